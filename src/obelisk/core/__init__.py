"""Pure domain code: identifiers, levels, main DICOM tags, header parsing and query matching."""
