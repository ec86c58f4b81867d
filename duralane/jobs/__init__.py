"""The job domain: the spec users submit, retry math, kinds and safety rules."""
