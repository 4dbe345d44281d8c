"""The process entry points: settings -> one worker or server, with signals."""
