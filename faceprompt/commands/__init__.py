"""Thin command modules behind `faceprompt <command>`."""
