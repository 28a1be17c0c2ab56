"""The Swiss Airlines support agent's tools: a small SQLite "airline" database.

The database is the file `MNC_AIRLINE_DB` names, made from `SEED` below when missing, or,
when it is not set, one in the process's memory (its bookings last as long as the
process: enough for `mnc test`). Its flights are scheduled from the moment it is made,
as the original tutorial moves its flights to the present. The read tools query it; each
write effect first appends one JSON line to the ledger (`MNC_EXAMPLE_LEDGER`, default
`.ledger.jsonl` here), so tests count what the airline was sent, then applies its
change once per wire key: the `requests` table keeps the answer to each key, as a real
booking API that honours an idempotency key would, so a call made again after a crash
changes nothing twice.

A refusal (a ticket of another passenger, a flight less than three hours away, an id
that names nothing) is raised as `Rejected`, which the agent's model is told.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mnlang.effect_log import record
from mnlang.errors import Rejected

HERE = Path(__file__).resolve().parent
TIME_FORMAT = "%Y-%m-%d %H:%M:%S%z"

SCHEMA = """
CREATE TABLE flights (
  flight_id INTEGER PRIMARY KEY, flight_no TEXT, departure_airport TEXT,
  arrival_airport TEXT, scheduled_departure TEXT, scheduled_arrival TEXT, status TEXT
);
CREATE TABLE tickets (ticket_no TEXT PRIMARY KEY, book_ref TEXT, passenger_id TEXT);
CREATE TABLE ticket_flights (
  ticket_no TEXT, flight_id INTEGER, fare_conditions TEXT, seat_no TEXT
);
CREATE TABLE car_rentals (
  id INTEGER PRIMARY KEY, name TEXT, location TEXT, price_tier TEXT,
  start_date TEXT, end_date TEXT, booked INTEGER
);
CREATE TABLE hotels (
  id INTEGER PRIMARY KEY, name TEXT, location TEXT, price_tier TEXT,
  checkin_date TEXT, checkout_date TEXT, booked INTEGER
);
CREATE TABLE trip_recommendations (
  id INTEGER PRIMARY KEY, name TEXT, location TEXT, keywords TEXT, details TEXT, booked INTEGER
);
CREATE TABLE requests (wire_key TEXT PRIMARY KEY, effect TEXT, answer TEXT);
"""

# (flight_id, flight_no, from, to, hours from the database's creation, hours in the air)
FLIGHTS = [
    (19250, "LX0112", "CDG", "BSL", 2, 1),
    (19251, "LX0112", "CDG", "BSL", 26, 1),
    (19252, "LX0112", "CDG", "BSL", 170, 1),
    (19253, "LX0114", "CDG", "BSL", 176, 1),
    (19260, "LX0136", "BSL", "CDG", 180, 1),
    (19270, "LX0320", "ZRH", "LHR", 30, 2),
]
SEED = {
    "tickets": [("7240005432906569", "C46E9F", "3442 587242")],
    "ticket_flights": [("7240005432906569", 19250, "Economy", "18E")],
    "car_rentals": [
        (1, "Europcar", "Basel", "Economy", "2026-12-13", "2026-12-20", 0),
        (2, "Avis", "Basel", "Luxury", "2026-12-13", "2026-12-20", 0),
        (3, "Hertz", "Zurich", "Midsize", "2026-12-13", "2026-12-20", 0),
        (4, "Sixt", "Basel", "Midsize", "2026-12-13", "2026-12-20", 0),
    ],
    "hotels": [
        (1, "Hilton Basel", "Basel", "Luxury", "2026-12-13", "2026-12-20", 0),
        (3, "Hyatt Regency Basel", "Basel", "Upper Upscale", "2026-12-13", "2026-12-20", 0),
        (8, "Holiday Inn Basel", "Basel", "Upper Midscale", "2026-12-13", "2026-12-20", 0),
        (9, "Courtyard Zurich", "Zurich", "Upscale", "2026-12-13", "2026-12-20", 0),
    ],
    "trip_recommendations": [
        (1, "Basel Minster", "Basel", "landmark, history", "Gothic cathedral with a view", 0),
        (2, "Kunstmuseum Basel", "Basel", "art, museum", "Old masters to modern art", 0),
        (3, "Basel Zoo", "Basel", "wildlife, zoo", "The oldest zoo in Switzerland", 0),
        (4, "Fondation Beyeler", "Basel", "art, museum", "Modern art in a park", 0),
    ],
}


_MEMORY: list[sqlite3.Connection] = []  # the in-process database, made on first use
_LOCK = threading.Lock()  # tools run on worker threads; one of them uses the database at a time


def _create(db: sqlite3.Connection) -> None:
    """The seed, its flights scheduled from now on."""
    db.executescript(SCHEMA)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for fid, number, origin, to, after, hours in FLIGHTS:
        leaves = start + timedelta(hours=after)
        lands = leaves + timedelta(hours=hours)
        db.execute(
            "INSERT INTO flights VALUES (?, ?, ?, ?, ?, ?, 'Scheduled')",
            (fid, number, origin, to, leaves.strftime(TIME_FORMAT), lands.strftime(TIME_FORMAT)),
        )
    for table, rows in SEED.items():
        marks = ", ".join("?" * len(rows[0]))
        db.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)


def _open() -> sqlite3.Connection:
    """The file `MNC_AIRLINE_DB` names (made from the seed when missing, in a side file
    moved into place, so no process sees half a database), else the process's own."""
    name = os.environ.get("MNC_AIRLINE_DB")
    if not name:
        if not _MEMORY:
            memory = sqlite3.connect(":memory:", check_same_thread=False)
            with memory:
                _create(memory)
            _MEMORY.append(memory)
        return _MEMORY[0]
    path = Path(name)
    if not path.exists():
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        partial.unlink(missing_ok=True)
        with closing(sqlite3.connect(partial)) as fresh, fresh:
            _create(fresh)
        partial.replace(path)
    return sqlite3.connect(path, timeout=10)


@contextmanager
def _db() -> Iterator[sqlite3.Connection]:
    with _LOCK:
        db = _open()
        db.row_factory = sqlite3.Row
        try:
            with db:  # one transaction: committed when the block ends, rolled back on an error
                yield db
        finally:
            if db not in _MEMORY:
                db.close()


def _rows(db: sqlite3.Connection, query: str, params: list[Any]) -> list[dict[str, Any]]:
    rows = [dict(r) for r in db.execute(query, params).fetchall()]
    for row in rows:
        if "booked" in row:
            row["booked"] = bool(row["booked"])
    return rows


def _write(effect: str, ctx: Any, args: dict[str, Any], change: Callable[[Any], str]) -> str:
    """Logs the call, then applies `change` once for the call's wire key: a key seen
    before gets the answer it got then."""
    record(effect, ctx, args, HERE / ".ledger.jsonl")
    key = getattr(ctx, "wire_key", None) or getattr(ctx, "key", None)
    with _db() as db:
        if key is not None:
            seen = db.execute("SELECT answer FROM requests WHERE wire_key = ?", (key,)).fetchone()
            if seen is not None:
                return str(json.loads(seen["answer"]))
        answer = change(db)
        if key is not None:
            db.execute("INSERT INTO requests VALUES (?, ?, ?)", (key, effect, json.dumps(answer)))
        return answer


# ---- policies ------------------------------------------------------------------------


def lookup_policy(query: str, *, ctx: Any = None) -> str:
    """Consult the company policies to check whether certain options are permitted.
    Use this before making any flight changes performing other 'write' events.

    Args:
        query: What to look up, in a few words (e.g. "change flight fee").
    """
    sections = re.split(r"(?=\n## )", (HERE / "policy.md").read_text("utf-8"))
    words = set(re.findall(r"[a-z]+", query.lower()))

    def score(section: str) -> int:
        return sum(1 for w in re.findall(r"[a-z]+", section.lower()) if w in words)

    best = sorted(sections, key=score, reverse=True)[:2]
    return "\n\n".join(s.strip() for s in best)


# ---- flights -------------------------------------------------------------------------


def fetch_user_flight_information(passenger: str, *, ctx: Any = None) -> list[dict[str, Any]]:
    """Fetch all tickets for the user along with corresponding flight information and
    seat assignments."""
    with _db() as db:
        return _rows(
            db,
            """
            SELECT t.ticket_no, t.book_ref, f.flight_id, f.flight_no, f.departure_airport,
                   f.arrival_airport, f.scheduled_departure, f.scheduled_arrival,
                   tf.seat_no, tf.fare_conditions
            FROM tickets t
            JOIN ticket_flights tf ON t.ticket_no = tf.ticket_no
            JOIN flights f ON tf.flight_id = f.flight_id
            WHERE t.passenger_id = ?
            ORDER BY f.scheduled_departure
            """,
            [passenger],
        )


def search_flights(
    departure_airport: str | None,
    arrival_airport: str | None,
    start_time: str | None,
    end_time: str | None,
    limit: int,
    *,
    ctx: Any = None,
) -> list[dict[str, Any]]:
    """Search for flights based on departure airport, arrival airport, and departure
    time range."""
    query, params = "SELECT * FROM flights WHERE 1 = 1", []
    for column, op, value in (
        ("departure_airport", "=", departure_airport),
        ("arrival_airport", "=", arrival_airport),
        ("scheduled_departure", ">=", start_time),
        ("scheduled_departure", "<=", end_time),
    ):
        if value:
            query += f" AND {column} {op} ?"
            params.append(value)
    with _db() as db:
        return _rows(db, query + " ORDER BY scheduled_departure LIMIT ?", [*params, limit])


def update_ticket_to_new_flight(
    passenger: str, ticket_no: str, new_flight_id: int, *, ctx: Any = None
) -> str:
    """Update the user's ticket to a new valid flight."""

    def change(db: sqlite3.Connection) -> str:
        flight = db.execute(
            "SELECT scheduled_departure FROM flights WHERE flight_id = ?", (new_flight_id,)
        ).fetchone()
        if flight is None:
            raise Rejected(f"no flight {new_flight_id}")
        leaves = datetime.strptime(flight["scheduled_departure"], TIME_FORMAT)
        if leaves - datetime.now(UTC) < timedelta(hours=3):
            raise Rejected(
                "not permitted to reschedule to a flight that is less than 3 hours from "
                f"the current time; the selected flight leaves at {leaves}"
            )
        _own_ticket(db, passenger, ticket_no)
        db.execute(
            "UPDATE ticket_flights SET flight_id = ? WHERE ticket_no = ?",
            (new_flight_id, ticket_no),
        )
        return "Ticket successfully updated to new flight."

    args = {"passenger": passenger, "ticket_no": ticket_no, "new_flight_id": new_flight_id}
    return _write("update_ticket_to_new_flight", ctx, args, change)


def cancel_ticket(passenger: str, ticket_no: str, *, ctx: Any = None) -> str:
    """Cancel the user's ticket and remove it from the database."""

    def change(db: sqlite3.Connection) -> str:
        _own_ticket(db, passenger, ticket_no)
        db.execute("DELETE FROM ticket_flights WHERE ticket_no = ?", (ticket_no,))
        return "Ticket successfully cancelled."

    args = {"passenger": passenger, "ticket_no": ticket_no}
    return _write("cancel_ticket", ctx, args, change)


def _own_ticket(db: sqlite3.Connection, passenger: str, ticket_no: str) -> None:
    found = db.execute(
        "SELECT passenger_id FROM tickets t JOIN ticket_flights tf USING (ticket_no) "
        "WHERE ticket_no = ?",
        (ticket_no,),
    ).fetchone()
    if found is None:
        raise Rejected(f"no existing ticket {ticket_no}")
    if found["passenger_id"] != passenger:
        raise Rejected(f"the signed-in passenger is not the owner of ticket {ticket_no}")


# ---- car rentals, hotels and excursions ----------------------------------------------


def _search(
    table: str, location: str | None, name: str | None, extra: str = "", extra_params: Any = ()
) -> list[dict[str, Any]]:
    query, params = f"SELECT * FROM {table} WHERE 1 = 1", []
    if location:
        query += " AND location LIKE ?"
        params.append(f"%{location}%")
    if name:
        query += " AND name LIKE ?"
        params.append(f"%{name}%")
    with _db() as db:
        return _rows(db, query + extra + " ORDER BY id", [*params, *extra_params])


def _set(table: str, what: str, item: int, sets: dict[str, Any]) -> Callable[[Any], str]:
    def change(db: sqlite3.Connection) -> str:
        given = {k: v for k, v in sets.items() if v is not None}
        if not given:
            raise Rejected(f"nothing to change for {what} {item}")
        assignments = ", ".join(f"{k} = ?" for k in given)
        done = db.execute(f"UPDATE {table} SET {assignments} WHERE id = ?", [*given.values(), item])
        if done.rowcount == 0:
            raise Rejected(f"no {what} found with ID {item}")
        verb = {1: "booked", 0: "cancelled"}.get(given.get("booked", -1), "updated")
        return f"{what.capitalize()} {item} successfully {verb}."

    return change


def search_car_rentals(
    location: str | None,
    name: str | None,
    price_tier: str | None,
    start_date: str | None,
    end_date: str | None,
    *,
    ctx: Any = None,
) -> list[dict[str, Any]]:
    """Search for car rentals based on location, name, price tier, start date, and end
    date (any dates and price tier match, as in the original tutorial)."""
    return _search("car_rentals", location, name)


def book_car_rental(rental_id: int, *, ctx: Any = None) -> str:
    """Book a car rental by its ID."""
    change = _set("car_rentals", "car rental", rental_id, {"booked": 1})
    return _write("book_car_rental", ctx, {"rental_id": rental_id}, change)


def update_car_rental(
    rental_id: int, start_date: str | None, end_date: str | None, *, ctx: Any = None
) -> str:
    """Update a car rental's start and end dates by its ID."""
    sets = {"start_date": start_date, "end_date": end_date}
    args = {"rental_id": rental_id, **sets}
    return _write(
        "update_car_rental", ctx, args, _set("car_rentals", "car rental", rental_id, sets)
    )


def cancel_car_rental(rental_id: int, *, ctx: Any = None) -> str:
    """Cancel a car rental by its ID."""
    change = _set("car_rentals", "car rental", rental_id, {"booked": 0})
    return _write("cancel_car_rental", ctx, {"rental_id": rental_id}, change)


def search_hotels(
    location: str | None,
    name: str | None,
    price_tier: str | None,
    checkin_date: str | None,
    checkout_date: str | None,
    *,
    ctx: Any = None,
) -> list[dict[str, Any]]:
    """Search for hotels based on location, name, price tier, check-in date, and
    check-out date (any dates and price tier match, as in the original tutorial)."""
    return _search("hotels", location, name)


def book_hotel(hotel_id: int, *, ctx: Any = None) -> str:
    """Book a hotel by its ID."""
    change = _set("hotels", "hotel", hotel_id, {"booked": 1})
    return _write("book_hotel", ctx, {"hotel_id": hotel_id}, change)


def update_hotel(
    hotel_id: int, checkin_date: str | None, checkout_date: str | None, *, ctx: Any = None
) -> str:
    """Update a hotel's check-in and check-out dates by its ID."""
    sets = {"checkin_date": checkin_date, "checkout_date": checkout_date}
    args = {"hotel_id": hotel_id, **sets}
    return _write("update_hotel", ctx, args, _set("hotels", "hotel", hotel_id, sets))


def cancel_hotel(hotel_id: int, *, ctx: Any = None) -> str:
    """Cancel a hotel by its ID."""
    change = _set("hotels", "hotel", hotel_id, {"booked": 0})
    return _write("cancel_hotel", ctx, {"hotel_id": hotel_id}, change)


def search_trip_recommendations(
    location: str | None, name: str | None, keywords: str | None, *, ctx: Any = None
) -> list[dict[str, Any]]:
    """Search for trip recommendations based on location, name, and keywords."""
    words = [w.strip() for w in (keywords or "").split(",") if w.strip()]
    extra = " AND (" + " OR ".join("keywords LIKE ?" for _ in words) + ")" if words else ""
    return _search("trip_recommendations", location, name, extra, [f"%{w}%" for w in words])


def book_excursion(recommendation_id: int, *, ctx: Any = None) -> str:
    """Book an excursion by its recommendation ID."""
    change = _set("trip_recommendations", "trip recommendation", recommendation_id, {"booked": 1})
    return _write("book_excursion", ctx, {"recommendation_id": recommendation_id}, change)


def update_excursion(recommendation_id: int, details: str, *, ctx: Any = None) -> str:
    """Update a trip recommendation's details by its ID."""
    sets = {"details": details}
    change = _set("trip_recommendations", "trip recommendation", recommendation_id, sets)
    args = {"recommendation_id": recommendation_id, "details": details}
    return _write("update_excursion", ctx, args, change)


def cancel_excursion(recommendation_id: int, *, ctx: Any = None) -> str:
    """Cancel an excursion by its recommendation ID."""
    change = _set("trip_recommendations", "trip recommendation", recommendation_id, {"booked": 0})
    return _write("cancel_excursion", ctx, {"recommendation_id": recommendation_id}, change)
