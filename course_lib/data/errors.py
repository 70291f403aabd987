"""The one exception the data layer raises for problems a user can fix."""
from __future__ import annotations


class DataError(ValueError):
    """Something about a dataset, a download or an image folder is wrong.

    The message is a full sentence for a student or instructor: what was wrong, which
    file, folder or URL, and what to do about it. The command line prints it without a
    traceback (``course_lib.cli`` catches ``ValueError``).
    """
