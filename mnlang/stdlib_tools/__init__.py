"""Python implementations of the standard library's tools and effects (`stdlib/*.mn`)."""
