"""What the county's side of the server holds: the directory, the timetable, the
administrators, the attendance log, line checks and library views, all over
DATA_DIR/zhuandi.db. `open_county` is also what the CLI uses."""

from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from server.admins import Admins
from server.attendance import AttendanceLog
from server.database import DATABASE
from server.directory import Directory
from server.library_views import LibraryViews
from server.linecheck import LineChecks
from server.timetable import Timetable


@dataclass
class County:
    directory: Directory
    timetable: Timetable
    admins: Admins
    attendance: AttendanceLog
    checks: LineChecks
    views: LibraryViews
    zone: ZoneInfo

    def close(self) -> None:
        for repository in (
            self.views,
            self.checks,
            self.attendance,
            self.admins,
            self.timetable,
            self.directory,
        ):
            repository.close()


def open_county(data_dir: Path, timezone: str) -> County:
    path = data_dir / DATABASE
    zone = ZoneInfo(timezone)
    directory = Directory(path)  # first: the others refer to its tables
    return County(
        directory=directory,
        timetable=Timetable(path, zone),
        admins=Admins(path),
        attendance=AttendanceLog(path),
        checks=LineChecks(path),
        views=LibraryViews(path),
        zone=zone,
    )
