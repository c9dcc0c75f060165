"""The use cases of Obelisk: the only home of business rules. Edges (HTTP, DICOM, scripts) call
these services; the services call the index and the storage area."""
