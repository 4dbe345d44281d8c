"""CBV 2.0 standard vocabularies, their one stored form, and the lifecycle stage of each bizStep."""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from epcis.rejects import EventRejected, RejectCode

__all__ = [
    "BIZ_STEPS",
    "BIZ_TRANSACTION_TYPES",
    "DISPOSITIONS",
    "ERROR_REASONS",
    "SENSOR_MEASUREMENT_TYPES",
    "SOURCE_DEST_TYPES",
    "STAGE_BY_BIZ_STEP",
    "CBVKind",
    "Stage",
    "canonical_cbv",
    "cbv_spellings",
    "cbv_uri",
    "stage_of",
]


class CBVKind(StrEnum):
    """The standard vocabularies an EPCIS event draws on; the value is how details name them."""

    BIZ_STEP = "CBV 2.0 bizStep"
    DISPOSITION = "CBV 2.0 disposition"
    BIZ_TRANSACTION_TYPE = "CBV 2.0 business transaction type"
    SOURCE_DEST_TYPE = "CBV 2.0 source/destination type"
    ERROR_REASON = "CBV 2.0 error reason"
    SENSOR_MEASUREMENT_TYPE = "GS1 sensor measurement type"


# CBV 2.0 section 7.1 (41 values).
BIZ_STEPS: frozenset[str] = frozenset(
    {
        "accepting",
        "arriving",
        "assembling",
        "collecting",
        "commissioning",
        "consigning",
        "creating_class_instance",
        "cycle_counting",
        "decommissioning",
        "departing",
        "destroying",
        "disassembling",
        "dispensing",
        "encoding",
        "entering_exiting",
        "holding",
        "inspecting",
        "installing",
        "killing",
        "loading",
        "other",
        "packing",
        "picking",
        "receiving",
        "removing",
        "repackaging",
        "repairing",
        "replacing",
        "reserving",
        "retail_selling",
        "sampling",
        "sensor_reporting",
        "shipping",
        "staging_outbound",
        "stock_taking",
        "stocking",
        "storing",
        "transporting",
        "unloading",
        "unpacking",
        "void_shipping",
    }
)

# CBV 2.0 section 7.2 (33 values).
DISPOSITIONS: frozenset[str] = frozenset(
    {
        "active",
        "available",
        "completeness_inferred",
        "completeness_verified",
        "conformant",
        "container_closed",
        "container_open",
        "damaged",
        "destroyed",
        "dispensed",
        "disposed",
        "encoded",
        "expired",
        "in_progress",
        "in_transit",
        "inactive",
        "mismatch_class",
        "mismatch_instance",
        "mismatch_quantity",
        "needs_replacement",
        "no_pedigree_match",
        "non_conformant",
        "non_sellable_other",
        "partially_dispensed",
        "recalled",
        "reserved",
        "retail_sold",
        "returned",
        "sellable_accessible",
        "sellable_not_accessible",
        "stolen",
        "unavailable",
        "unknown",
    }
)

# CBV 2.0 section 7.3.
BIZ_TRANSACTION_TYPES: frozenset[str] = frozenset(
    {
        "bol",
        "cert",
        "desadv",
        "inv",
        "pedigree",
        "po",
        "poc",
        "prodorder",
        "recadv",
        "rma",
        "testprd",
        "testres",
        "upevt",
    }
)

# CBV 2.0 section 7.4.
SOURCE_DEST_TYPES: frozenset[str] = frozenset({"owning_party", "possessing_party", "location"})

# CBV 2.0 section 7.5.
ERROR_REASONS: frozenset[str] = frozenset({"did_not_occur", "incorrect_data"})

# The measurement types the EPCIS 2.0 JSON schema enumerates (terms of https://gs1.org/voc/).
SENSOR_MEASUREMENT_TYPES: frozenset[str] = frozenset(
    {
        "AbsoluteHumidity",
        "AbsorbedDose",
        "AbsorbedDoseRate",
        "Acceleration",
        "Altitude",
        "AmountOfSubstance",
        "AmountOfSubstancePerUnitVolume",
        "Angle",
        "AngularAcceleration",
        "AngularMomentum",
        "AngularVelocity",
        "Area",
        "Capacitance",
        "Conductance",
        "Conductivity",
        "Count",
        "Density",
        "Dimensionless",
        "DoseEquivalent",
        "DoseEquivalentRate",
        "DynamicViscosity",
        "ElectricCharge",
        "ElectricCurrent",
        "ElectricCurrentDensity",
        "ElectricFieldStrength",
        "Energy",
        "Exposure",
        "Force",
        "Frequency",
        "Illuminance",
        "Inductance",
        "Irradiance",
        "KinematicViscosity",
        "Length",
        "LinearMomentum",
        "Luminance",
        "LuminousFlux",
        "LuminousIntensity",
        "MagneticFlux",
        "MagneticFluxDensity",
        "MagneticVectorPotential",
        "Mass",
        "MassConcentration",
        "MassFlowRate",
        "MassPerAreaTime",
        "MemoryCapacity",
        "MolalityOfSolute",
        "MolarEnergy",
        "MolarMass",
        "MolarVolume",
        "Power",
        "Pressure",
        "RadiantFlux",
        "RadiantIntensity",
        "Radioactivity",
        "RelativeHumidity",
        "Resistance",
        "Resistivity",
        "SolidAngle",
        "SpecificVolume",
        "Speed",
        "SurfaceDensity",
        "SurfaceTension",
        "Temperature",
        "Time",
        "Torque",
        "Voltage",
        "Volume",
        "VolumeFlowRate",
        "VolumeFraction",
        "VolumetricFlux",
        "Wavenumber",
    }
)

_CBV_WEB = "https://ref.gs1.org/cbv/"
_CBV_URN = "urn:epcglobal:cbv:"
_CBV_CURIE = "cbv:"
_GS1_VOC = "https://gs1.org/voc/"


def _cbv_prefixes(web_term: str, urn_term: str) -> tuple[str, ...]:
    return (f"{_CBV_WEB}{web_term}-", f"{_CBV_URN}{urn_term}:", f"{_CBV_CURIE}{web_term}-")


_WORDS: Mapping[CBVKind, frozenset[str]] = MappingProxyType(
    {
        CBVKind.BIZ_STEP: BIZ_STEPS,
        CBVKind.DISPOSITION: DISPOSITIONS,
        CBVKind.BIZ_TRANSACTION_TYPE: BIZ_TRANSACTION_TYPES,
        CBVKind.SOURCE_DEST_TYPE: SOURCE_DEST_TYPES,
        CBVKind.ERROR_REASON: ERROR_REASONS,
        CBVKind.SENSOR_MEASUREMENT_TYPE: SENSOR_MEASUREMENT_TYPES,
    }
)

# The URI forms that carry a standard word of each vocabulary, word last.
_PREFIXES: Mapping[CBVKind, tuple[str, ...]] = MappingProxyType(
    {
        CBVKind.BIZ_STEP: _cbv_prefixes("BizStep", "bizstep"),
        CBVKind.DISPOSITION: _cbv_prefixes("Disp", "disp"),
        CBVKind.BIZ_TRANSACTION_TYPE: _cbv_prefixes("BTT", "btt"),
        CBVKind.SOURCE_DEST_TYPE: _cbv_prefixes("SDT", "sdt"),
        CBVKind.ERROR_REASON: _cbv_prefixes("ER", "er"),
        CBVKind.SENSOR_MEASUREMENT_TYPE: (_GS1_VOC, "gs1:"),
    }
)

# GS1 owns these namespaces, so a term in them that is not a standard word is a mistake, not an
# extension. The gs1: voc namespace is left out on purpose: EPCIS 2.0 drafts (and libraries built
# on them) wrote measurement types as gs1:MT-Temperature, which we keep as opaque URIs.
_RESERVED: Mapping[CBVKind, tuple[str, ...]] = MappingProxyType(
    {
        kind: (_CBV_WEB, _CBV_URN, _CBV_CURIE)
        for kind in CBVKind
        if kind is not CBVKind.SENSOR_MEASUREMENT_TYPE
    }
)

_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+", re.ASCII)


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def canonical_cbv(kind: CBVKind, value: str) -> str:
    """The stored form of a vocabulary value: the bare word if standard, else the URI unchanged.

    Accepts the bare word (`shipping`), the web URI (`https://ref.gs1.org/cbv/BizStep-shipping`),
    the CURIE (`cbv:BizStep-shipping`) and the EPCIS 1.x URN (`urn:epcglobal:cbv:bizstep:shipping`);
    any other URI is a user vocabulary, which CBV permits. Raises
    `EventRejected(INVALID_VOCABULARY)` for a bare word that is not standard, for an unknown term
    in a GS1 CBV namespace, and for anything that is neither a word nor a URI.
    """
    words = _WORDS[kind]
    if value in words:
        return value
    for prefix in _PREFIXES[kind]:
        if value.startswith(prefix) and value[len(prefix) :] in words:
            return value[len(prefix) :]
    if ":" not in value:
        raise EventRejected(
            RejectCode.INVALID_VOCABULARY,
            f"{_shown(value)} is not a {kind.value} (use a standard word or a URI)",
        )
    if value.startswith(_RESERVED.get(kind, ())):
        raise EventRejected(
            RejectCode.INVALID_VOCABULARY,
            f"{_shown(value)} is not a {kind.value}",
        )
    if _URI.fullmatch(value) is None:
        raise EventRejected(
            RejectCode.INVALID_VOCABULARY,
            f"{_shown(value)} is neither a {kind.value} nor a URI",
        )
    return value


def cbv_spellings(kind: CBVKind, canonical: str) -> frozenset[str]:
    """Every form a stored field may carry a canonical value in (fields kept as captured, such
    as persistentDisposition, hold any of them): a standard word bare and in each URI form; any
    other URI as it is."""
    if canonical not in _WORDS[kind]:
        return frozenset({canonical})
    return frozenset({canonical, *(prefix + canonical for prefix in _PREFIXES[kind])})


class Stage(StrEnum):
    """The five lifecycle stages of the mission: views over CBV business steps."""

    MANUFACTURING = "manufacturing"
    QUALITY_INSPECTION = "quality_inspection"
    INVENTORY = "inventory"
    LOGISTICS = "logistics"
    SALES = "sales"


STAGE_BY_BIZ_STEP: Mapping[str, Stage] = MappingProxyType(
    {
        "commissioning": Stage.MANUFACTURING,
        "creating_class_instance": Stage.MANUFACTURING,
        "assembling": Stage.MANUFACTURING,
        "encoding": Stage.MANUFACTURING,
        "packing": Stage.MANUFACTURING,
        "inspecting": Stage.QUALITY_INSPECTION,
        "sampling": Stage.QUALITY_INSPECTION,
        "receiving": Stage.INVENTORY,
        "storing": Stage.INVENTORY,
        "stocking": Stage.INVENTORY,
        "holding": Stage.INVENTORY,
        "picking": Stage.INVENTORY,
        "cycle_counting": Stage.INVENTORY,
        "stock_taking": Stage.INVENTORY,
        "staging_outbound": Stage.LOGISTICS,
        "loading": Stage.LOGISTICS,
        "shipping": Stage.LOGISTICS,
        "departing": Stage.LOGISTICS,
        "transporting": Stage.LOGISTICS,
        "arriving": Stage.LOGISTICS,
        "unloading": Stage.LOGISTICS,
        "retail_selling": Stage.SALES,
        "accepting": Stage.SALES,
    }
)


def stage_of(biz_step: str | None) -> Stage | None:
    """The lifecycle stage of a canonical bizStep; None for other and user-defined steps."""
    if biz_step is None:
        return None
    return STAGE_BY_BIZ_STEP.get(biz_step)


def cbv_uri(kind: CBVKind, value: str, form: Literal["urn", "web"]) -> str:
    """A stored vocabulary value as the XML binding writes it: a standard word as its EPCIS 1.x
    URN (`urn:epcglobal:cbv:bizstep:shipping`) or its web URI
    (`https://ref.gs1.org/cbv/BizStep-shipping`); a sensor measurement type as its `gs1:` CURIE
    (the XSD's form); anything else (a user vocabulary's URI) unchanged."""
    if value not in _WORDS[kind]:
        return value
    web, urn, *_ = _PREFIXES[kind]
    if kind is CBVKind.SENSOR_MEASUREMENT_TYPE:
        return f"gs1:{value}"
    return (urn if form == "urn" else web) + value
