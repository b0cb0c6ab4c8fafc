"""Report store (where report plugins' charts live) and chart helpers."""
