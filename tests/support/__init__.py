"""Helpers shared by the test suites and the benchmarks (synthetic DICOM, a real Orthanc)."""
