"""The pure GS1 EPCIS 2.0 / CBV 2.0 core: event model, hash, identifiers, validation; no I/O."""
