"""Low-level DICOM helpers shared by every stage."""
