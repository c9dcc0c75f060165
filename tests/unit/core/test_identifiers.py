from obelisk.core.identifiers import ResourceIds, looks_like_orthanc_id, orthanc_hash


def test_patient_id_hash_matches_orthanc() -> None:
    # Computed by Orthanc 1.10.1 for PatientID "P001" (see shared reference notes).
    assert orthanc_hash("P001") == "dc3a2358-d3d6ff77-c0e3b3ed-ce1256f5-c8779d84"


def test_empty_patient_id_is_sha1_of_empty_string() -> None:
    assert orthanc_hash("") == "da39a3ee-5e6b4b0d-3255bfef-95601890-afd80709"


def test_levels_chain_the_identifiers_with_pipes() -> None:
    ids = ResourceIds.compute("P001", "1.2.3", "1.2.3.4", "1.2.3.4.5")
    assert ids.study == orthanc_hash("P001|1.2.3")
    assert ids.series == orthanc_hash("P001|1.2.3|1.2.3.4")
    assert ids.instance == orthanc_hash("P001|1.2.3|1.2.3.4|1.2.3.4.5")
    assert all(looks_like_orthanc_id(i) for i in ids.by_level())


def test_looks_like_orthanc_id_rejects_other_text() -> None:
    assert not looks_like_orthanc_id("not-an-id")
    assert not looks_like_orthanc_id("DC3A2358-d3d6ff77-c0e3b3ed-ce1256f5-c8779d84")
