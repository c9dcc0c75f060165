"""DIMSE over pynetdicom: the DICOM server (``scp``), the client (``scu``), shared contexts."""
