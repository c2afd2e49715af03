"""The store's error boundary: a ``sqlite3.Error`` becomes one ``StoreError``; runs no SQL.

Every public entry point of the store (a ``Store`` method or a function of a store module
taking the store first) is wrapped with :func:`store_call`, so a locked database, a full
disk or a read-only file reaches the command line as one line and exit 1, never a
traceback (tests/test_store_errors.py walks the modules and checks).
"""

from __future__ import annotations

import functools
import inspect
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from watcher.exceptions import StoreError

P = ParamSpec("P")
T = TypeVar("T")
Y = TypeVar("Y")


class HasPath(Protocol):
    @property
    def path(self) -> Path: ...


S = TypeVar("S", bound=HasPath)


def store_error(path: Path, error: sqlite3.Error) -> StoreError:
    """``database error: PATH: OperationalError: database is locked``."""
    return StoreError(f"database error: {path}: {type(error).__name__}: {error}")


def store_call(func: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
    """Turn a ``sqlite3.Error`` raised by ``func(store, ...)`` into ``StoreError``; for a
    generator, also while it is iterated."""
    if inspect.isgeneratorfunction(func):
        return _store_generator(func)  # type: ignore[return-value]

    @functools.wraps(func)
    def wrapper(store: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return func(store, *args, **kwargs)
        except sqlite3.Error as e:
            raise store_error(store.path, e) from e

    wrapper.__store_call__ = True  # type: ignore[attr-defined]
    return wrapper


def _store_generator(
    func: Callable[Concatenate[S, P], Iterator[Y]],
) -> Callable[Concatenate[S, P], Iterator[Y]]:
    @functools.wraps(func)
    def wrapper(store: S, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[Y]:
        try:
            yield from func(store, *args, **kwargs)
        except sqlite3.Error as e:
            raise store_error(store.path, e) from e

    wrapper.__store_call__ = True  # type: ignore[attr-defined]
    return wrapper


def is_store_call(func: object) -> bool:
    """Whether ``func`` was wrapped by :func:`store_call` (for the test that checks all are)."""
    return getattr(func, "__store_call__", False) is True
