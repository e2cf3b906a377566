"""Foundation shared by every layer: errors, config loading, checkpoint format."""
