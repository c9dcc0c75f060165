"""DICOMweb (QIDO-RS, WADO-RS, STOW-RS, WADO-URI) as protocol logic, free of any HTTP framework.

The HTTP edge (``obelisk.http.routes.dicomweb``) hands these modules plain values — path UIDs,
query pairs, the ``Accept``/``Content-Type`` header texts, the request body and the public base
URL — and gets back JSON-ready objects or byte streams with their media type. The modules call
the services (find, resources, ingest) and never the index or storage directly.
"""
