"""Case builders, one per situation ("kind"): single-turn requests and multi-turn histories."""
