"""The SFU core: sources, subscribers, layers. Knows no lessons and no users, and
imports none of our other packages."""
