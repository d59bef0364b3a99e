"""A sweep's Optuna study: where it is stored, the slots it is planned as, and the sweep's marks on it.

    <sweep>/study.journal   Optuna's JournalStorage (file backend, its open-lock): many processes
                            on one machine, or machines sharing a file system
    --storage URL           Optuna's RDBStorage (postgresql+psycopg://user@host/db, mysql+pymysql://…)
                            for workers on several machines

A sweep's trials are *slots*, numbered from 1 as in sweep.toml. Each slot is enqueued once: grid
points and seeded random draws with their values fixed, TPE slots empty so that the sampler picks
at the moment a worker takes the slot (with all finished trials before it). A worker claims a
waiting trial atomically (the storage's WAITING -> RUNNING), so no slot ever runs in two workers,
and Optuna's GridSampler (which can hand one point to two workers) is never used.

A worker beats a heartbeat into its running trial (a user attribute, the time). A running trial
whose heartbeat is older than the grace period belongs to a worker that is gone, whatever machine it
was on: another worker fails it (one of them wins: the storage refuses to finish a finished trial)
and re-queues it with Optuna's RetryHeartbeatStaleTrialCallback, keeping its slot, run folder and
reported values; the worker that takes the copy resumes the slot's run folder from its checkpoint.

The sweep's state (running, paused, stopped) is a user attribute of the study: `cnnlab stop`, the
console and every worker read it, wherever they are. The study also keeps sweep.toml's text, so a
worker on another machine rebuilds the sweep folder from the database alone.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.experiment.sweep_plan import SweepError
from engine.sweeps.folder import SWEEP_FILE, Sweep

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

JOURNAL_FILE = "study.journal"
# A database URL with its password, handed to processes cnnlab starts: in the environment, which
# only the user can read, never on a command line (`ps` shows every user's) nor in a file.
STORAGE_ENV = "CNNLAB_SWEEP_STORAGE"
SAMPLERS = ("grid", "random", "tpe")  # grid and random are planned (enqueued); tpe samples as it goes
PRUNERS = ("none", "median", "hyperband")
SWEEP_STATES = ("running", "paused", "stopped")
GRACE_S = 120.0  # a running trial silent this long is taken over
HEARTBEAT_EVERY = 6  # heartbeats per grace period

# Study user attributes
DOC_ATTR, STATE_ATTR, WORKER_ATTR = "cnnlab_sweep_toml", "cnnlab_state", "cnnlab_worker:"
# Trial user attributes (copied onto a re-queued trial by Optuna's retry callback)
SLOT, RUN, HEARTBEAT, WORKER = "slot", "run", "heartbeat", "worker"


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is the CLI's, not Optuna's
    # The retry callback has been "experimental" since Optuna 2.8; it is what takeover is built on.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return optuna


UNPARSED = "a database URL that does not parse"


def hide_password(url: str) -> str:
    """A database URL as a message may show it: its password as ***."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return UNPARSED


def strip_password(url: str) -> str:
    """A database URL as it is written down (sweep.toml, the study, a command to paste): without its
    password, which comes from the environment (STORAGE_ENV) or libpq's own PGPASSWORD and ~/.pgpass."""
    from sqlalchemy.engine import URL, make_url

    try:
        u = make_url(url)  # URL.set(password=None) would keep the password: None there means "unchanged"
        bare = URL.create(u.drivername, u.username, None, u.host, u.port, u.database, u.query)
        return bare.render_as_string(hide_password=False)
    except Exception:
        return hide_password(url)


def full_url(url: str) -> str:
    """The URL to connect with: `url` itself when it holds a password; else the environment's URL
    (STORAGE_ENV) when it names the same database, for it holds the password; else `url` as it is,
    and libpq finds the password where psql would (PGPASSWORD, ~/.pgpass). A stored password of ***
    (written by an older cnnlab) is none."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return url  # open_storage says what is wrong with it
    if parsed.password and parsed.password != "***":
        return url
    bare = strip_password(url)
    given = os.environ.get(STORAGE_ENV, "")
    return given if given and strip_password(given) == bare else bare


def storage_url_of(sweep: Sweep, given: str | None = None) -> str | None:
    """The database a sweep folder's study is in (None: its study.journal), password and all: `given`
    (--storage) over the one sweep.toml names. The environment alone never moves a journal sweep."""
    url = given or sweep.spec.get("storage_url") or None
    return full_url(url) if url else None


def _scrubbed(text: str, url: str) -> str:
    """An error's text with the URL's password, should the driver have quoted it, replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:
        return text
    return text.replace(str(password), "***") if password else text


def open_storage(sweep_dir: Path | None = None, url: str | None = None):
    """The study's storage: the database at `url`, else the journal file in `sweep_dir`."""
    optuna = _optuna()
    if url:
        if hide_password(url) == UNPARSED:  # not echoed: what does not parse may hold a password anywhere
            raise SweepError("--storage: not a database URL (postgresql+psycopg://user@host:port/db)")
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
        except ModuleNotFoundError as err:
            raise SweepError(
                f"--storage {hide_password(url)}: its database driver is not installed ({err.name}); "
                "for PostgreSQL: pip install 'psycopg[binary]' and use postgresql+psycopg://"
            ) from None
        except Exception as err:  # sqlalchemy's ArgumentError, OperationalError, …: say it, not a traceback
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise SweepError(
                f"--storage {hide_password(url)}: cannot open the database: {_scrubbed(first, url)}"
            ) from None
    if sweep_dir is None:
        raise SweepError("a sweep needs its folder (for study.journal) or --storage URL")
    from engine.sweeps.journal import CheckedJournal

    path = Path(sweep_dir) / JOURNAL_FILE
    try:
        return optuna.storages.JournalStorage(CheckedJournal(path))
    except SweepError:
        raise
    except (KeyError, TypeError, ValueError) as err:  # a record of Optuna's shape holding what no replay expects
        raise SweepError(f"{path} is damaged ({type(err).__name__}: {err}): the sweep's study does not read") from None
    except OSError as err:
        raise SweepError(f"{path} cannot be opened ({err.strerror or err})") from None


def storage_of(sweep: Sweep, given: str | None = None):
    """The storage a sweep folder names (`given`, else sweep.toml's `storage_url`), else its journal."""
    return open_storage(sweep.path, storage_url_of(sweep, given))


def direction(metric: str) -> str:
    return "minimize" if metric.endswith("_loss") else "maximize"


def sampler_for(sweep: Sweep, slot: int = 0):
    """The sampler a worker asks with. Seeded per slot, so a TPE slot's draw depends on the seed and
    on what had finished, never on which worker takes it (two workers never draw the same point)."""
    optuna = _optuna()
    seed = int(sweep.spec.get("seed", 0)) * 10007 + slot
    if sweep.spec.get("sampler") == "tpe":
        startup = int(sweep.spec.get("tpe_startup", 3))
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)
    return optuna.samplers.RandomSampler(seed=seed)  # planned slots have their values fixed: never consulted


def pruner_for(sweep: Sweep):
    optuna = _optuna()
    name = sweep.spec.get("pruner", "none")
    if name == "median":
        # Two trials finished before any is judged; judged from its first epoch on.
        return optuna.pruners.MedianPruner(n_startup_trials=int(sweep.spec.get("prune_startup", 2)), n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=sweep.base.train.epochs, reduction_factor=3)
    return optuna.pruners.NopPruner()


@dataclass
class SweepStudy:
    """A sweep's study and the storage it lives in (the storage's own calls claim and fail trials)."""

    study: optuna.Study
    storage: Any

    @property
    def name(self) -> str:
        return self.study.study_name

    def trial_id(self, number: int) -> int:
        study_id = self.storage.get_study_id_from_name(self.study.study_name)
        return self.storage.get_trial_id_from_study_id_trial_number(study_id, number)

    def trials(self, states: tuple | None = None) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states)


def create_study(sweep: Sweep, storage, slots: list[int] | None = None) -> SweepStudy:
    """A new study for a sweep folder: sweep.toml kept in it, every slot enqueued (or those named)."""
    optuna = _optuna()
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=sweep.id,
            direction=direction(sweep.metric),
            sampler=sampler_for(sweep),
            pruner=pruner_for(sweep),
        )
    except optuna.exceptions.DuplicatedStudyError:
        raise SweepError(f"the storage already holds a study named {sweep.id}") from None
    study.set_user_attr(DOC_ATTR, (sweep.path / SWEEP_FILE).read_text())
    study.set_user_attr(STATE_ATTR, "running")
    for slot in slots if slots is not None else range(1, len(sweep.trials) + 1):
        study.enqueue_trial(encode_params(sweep.trials[slot - 1]), user_attrs={SLOT: slot})
    return SweepStudy(study, storage)


def load_study(sweep: Sweep, storage=None) -> SweepStudy:
    optuna = _optuna()
    storage = storage or storage_of(sweep)
    try:
        study = optuna.load_study(
            study_name=sweep.study_name, storage=storage, sampler=sampler_for(sweep), pruner=pruner_for(sweep)
        )
        return SweepStudy(study, storage)
    except KeyError:
        journal = sweep.path / JOURNAL_FILE
        if not sweep.spec.get("storage_url") and journal.is_file() and journal.stat().st_size == 0:
            lost = "the sweep's study is lost; its run folders are as they were"
            raise SweepError(f"{journal} is empty: {lost}") from None
        raise SweepError(
            f"no study named {sweep.study_name} in {sweep.spec.get('storage_url') or JOURNAL_FILE}"
        ) from None


def fetch_sweep_doc(url: str, study_name: str) -> str:
    """sweep.toml's text as the study keeps it: how `--join --storage URL --study NAME` rebuilds the folder."""
    optuna = _optuna()
    storage = open_storage(url=url)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = ", ".join(s.study_name for s in optuna.get_all_study_summaries(storage)) or "none"
        raise SweepError(
            f"--study {study_name}: no such study in {hide_password(url)} (studies there: {names})"
        ) from None
    doc = study.user_attrs.get(DOC_ATTR)
    if not isinstance(doc, str):
        raise SweepError(f"--study {study_name} is not a cnnlab sweep (it keeps no sweep.toml)")
    return doc


# --- parameters: what Optuna sees of a slot ------------------------------------------------------------


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def encode_value(v: Any) -> Any:
    """Optuna's categorical choices are scalars: a list value (schedule.milestones) is its TOML text."""
    if _scalar(v):
        return v
    import tomli_w

    return tomli_w.dumps({"v": v})[4:].strip()


def encode_params(overrides: dict[str, Any]) -> dict[str, Any]:
    return {k: encode_value(v) for k, v in overrides.items()}


def suggest_overrides(sweep: Sweep, trial: optuna.Trial, slot: int) -> dict[str, Any]:
    """The slot's overrides, asked of the trial with their distributions (so importance and TPE see
    them): planned values come back as enqueued, TPE picks the others within their ranges."""
    grid, ranges = sweep.spec.get("grid", {}), sweep.spec.get("random", {})
    planned = sweep.trials[slot - 1] if slot <= len(sweep.trials) else {}
    base_ints = {k for k in ranges if isinstance(_base_value(sweep, k), int)}
    out: dict[str, Any] = {}
    for key, values in grid.items():
        choices = [encode_value(v) for v in values]
        picked = trial.suggest_categorical(key, choices)
        out[key] = values[choices.index(picked)]
    for key, spec in ranges.items():
        low, high, log = spec["low"], spec["high"], bool(spec.get("log", False))
        if key in base_ints:
            out[key] = trial.suggest_int(key, int(low), int(high), log=log)
        else:
            out[key] = trial.suggest_float(key, float(low), float(high), log=log)
    for key, value in planned.items():  # a planned slot is its plan, exactly as sweep.toml lists it
        out[key] = value
    return out


def _base_value(sweep: Sweep, key: str) -> Any:
    from engine.experiment.overrides import flatten

    return flatten(sweep.base).get(key)


# --- the sweep's state ---------------------------------------------------------------------------------


def sweep_state(ss: SweepStudy) -> str:
    state = ss.study.user_attrs.get(STATE_ATTR, "running")
    return state if state in SWEEP_STATES else "running"


def set_sweep_state(ss: SweepStudy, state: str) -> None:
    if state not in SWEEP_STATES:
        raise ValueError(f"sweep state {state!r}: one of {', '.join(SWEEP_STATES)}")
    ss.study.set_user_attr(STATE_ATTR, state)


def register_worker(ss: SweepStudy, name: str, state: str) -> None:
    """A worker says it has joined, or how it left: for the views (who works on the sweep). Whether
    it lives is judged by its trials' heartbeats, never by this."""
    ss.study.set_user_attr(f"{WORKER_ATTR}{name}", {"state": state, "at": time.time()})


def workers_of(ss: SweepStudy) -> dict[str, dict[str, Any]]:
    attrs = ss.study.user_attrs
    return {k[len(WORKER_ATTR) :]: v for k, v in attrs.items() if k.startswith(WORKER_ATTR) and isinstance(v, dict)}


# --- slots and their trials ----------------------------------------------------------------------------


def slot_of(trial: FrozenTrial) -> int:
    return int(trial.user_attrs.get(SLOT, 0))


def latest_by_slot(trials: Iterable[FrozenTrial]) -> dict[int, FrozenTrial]:
    """Each slot's newest trial (a re-queued copy supersedes the trial it retries)."""
    out: dict[int, FrozenTrial] = {}
    for t in sorted(trials, key=lambda t: t.number):
        if slot_of(t):
            out[slot_of(t)] = t
    return out


def open_slots(ss: SweepStudy) -> tuple[int, int]:
    """(waiting, running) slots: what is left to do."""
    from optuna.trial import TrialState

    latest = latest_by_slot(ss.trials())
    waiting = sum(t.state == TrialState.WAITING for t in latest.values())
    running = sum(t.state == TrialState.RUNNING for t in latest.values())
    return waiting, running


def pop_trial(ss: SweepStudy, sampler=None) -> optuna.Trial | None:
    """Claim one waiting slot, re-queued ones (a resume) first, then by slot; None when none waits.

    What `Study.ask` does for queued trials, without its fallback of sampling a fresh trial when the
    queue is empty: a sweep runs its slots and nothing else."""
    optuna = _optuna()
    from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry
    from optuna.trial import TrialState

    waiting = ss.trials(states=(TrialState.WAITING,))
    waiting.sort(key=lambda t: (Retry.retried_trial_number(t) is None, slot_of(t), t.number))
    for t in waiting:
        trial_id = ss.trial_id(t.number)
        try:
            if not ss.storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                continue  # another worker was first
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        if sampler is not None:
            ss.study.sampler = sampler(slot_of(t))  # seeded for this slot (engine.sweeps.study.sampler_for)
        trial = optuna.Trial(ss.study, trial_id)
        trial.set_user_attr(HEARTBEAT, time.time())
        return trial
    return None


def requeue(ss: SweepStudy, number: int) -> bool:
    """Fail the running trial `number` and queue a copy of it (slot, run folder, reported values), as
    Optuna's retry callback does for a stale trial. False: another worker finished or re-queued it first."""
    optuna = _optuna()
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    trial_id = ss.trial_id(number)
    try:
        if not ss.storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return False
    except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
        return False
    RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True)(ss.study, ss.storage.get_trial(trial_id))
    return True


def last_heard(trial: FrozenTrial) -> float:
    """When the trial's worker was last heard of: its heartbeat, or its start if later (a re-queued
    copy carries the heartbeat of the trial it retries)."""
    beat = trial.user_attrs.get(HEARTBEAT)
    started = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
    return max(float(beat) if isinstance(beat, (int, float)) else 0.0, started)


def take_over_stale(ss: SweepStudy, grace_s: float, now: float | None = None) -> list[int]:
    """Re-queue every running slot whose worker has been silent for `grace_s`: the slots of workers
    that died (killed, out of memory, a machine lost). Returns the slots this worker re-queued."""
    from optuna.trial import TrialState

    now = time.time() if now is None else now
    taken = []
    for t in ss.trials(states=(TrialState.RUNNING,)):
        if slot_of(t) and now - last_heard(t) > grace_s and requeue(ss, t.number):
            taken.append(slot_of(t))
    return taken


# --- results -------------------------------------------------------------------------------------------

FIGURES = ("epochs", "train_acc", "val_acc", "test_acc", "train_loss", "val_loss", "test_loss", "minutes")


def with_study_rows(sweep: Sweep, ss: SweepStudy, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The results table's rows (engine.sweeps.folder, read from the run folders here), completed from the
    study for slots trained where their folders are not: on another machine sharing the database,
    or still running there. Sorted again by the sweep's metric."""
    from optuna.trial import TrialState

    from engine.sweeps.folder import sort_rows

    latest = latest_by_slot(ss.trials())
    out = []
    for row in rows:
        t = latest.get(row["trial"])
        if row["run"] or t is None or t.state == TrialState.WAITING:
            out.append(row)
            continue
        row = dict(row)
        state = t.user_attrs.get("state") or ("running" if t.state == TrialState.RUNNING else t.state.name.lower())
        row.update({k: t.user_attrs[k] for k in FIGURES if k in t.user_attrs})
        row.update(state=state, run=str(t.user_attrs.get(RUN, "")), worker=str(t.user_attrs.get(WORKER, "")))
        for key in sweep.varied:
            if row.get(key) is None and key in t.params:
                row[key] = t.params[key]
        out.append(row)
    return sort_rows(out, sweep.metric)
