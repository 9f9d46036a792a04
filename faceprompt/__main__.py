"""`python -m faceprompt ...` (what `accelerate launch -m faceprompt train ...` runs)."""
from faceprompt.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
