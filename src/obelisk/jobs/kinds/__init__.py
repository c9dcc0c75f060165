"""Job kinds that belong to the engine itself (the concrete DICOM jobs live in services)."""
