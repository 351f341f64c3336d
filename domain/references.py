"""Human-readable application references, e.g. SIP-2018-R1-0007. Pure."""


def make_reference(round_id: str, sequence: int) -> str:
    if sequence < 1:
        raise ValueError("sequence starts at 1")
    return f"{round_id.upper()}-{sequence:04d}"
