"""Storage: every SQL statement of borgerdialog lives in this package."""
