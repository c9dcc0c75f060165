"""The REST edge: Starlette routes that parse, call one service and render Orthanc's JSON."""
