"""Writing packet streams to crash-safe files; post-lesson renditions."""
