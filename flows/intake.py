"""Import of applications received by the secretariat (e.g. by e-mail) as files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from engine.services.intake import import_batch, iter_application_files, read_file
from flows.common import check_round, instant, param, refusals_end_the_run, round_param, runtime, started_by, summarise

BATCH = 200


@dataclass(frozen=True)
class FileProblem:
    """Why a file was refused: where in it (`$` for the whole file), and what."""

    path: str
    message: str


@dataclass(frozen=True)
class FileImported:
    """One file's outcome: its application's reference (None if it was refused), and
    whether this run created it."""

    file: str
    reference: str | None
    created: bool
    errors: tuple[FileProblem, ...]


@dataclass(frozen=True)
class ImportSummary:
    """What `import-applications` did, file by file."""

    round: str
    files: int
    imported: int
    already_imported: int
    failed: int
    results: tuple[FileImported, ...]


@task(name="import-application-batch", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def import_application_batch(round_id: str, paths: list[str], actor: str, now_iso: str) -> list[FileImported]:
    """One transaction per batch; safe to retry: a file already imported is
    recognised by its content and answered with its reference."""
    rt = runtime()
    readable: list[tuple[str, bytes]] = []
    results: list[FileImported] = []
    for path in paths:
        content, problem = read_file(Path(path), rt.settings.max_request_bytes)
        if content is None:
            assert problem is not None  # a file not read says why
            results.append(FileImported(path, None, False, (FileProblem("$", problem),)))
        else:
            readable.append((path, content))
    for item in import_batch(rt.engine, rt.settings, round_id, readable, actor=actor, now=instant(now_iso)):
        results.append(
            FileImported(
                item.name,
                item.reference,
                item.created,
                tuple(FileProblem(e.path, e.message) for e in item.errors)
                or ((FileProblem("$", item.message),) if item.message else ()),
            )
        )
    return results


@flow(
    name="import-applications",
    log_prints=False,
    description="Import application files received by the secretariat (JSON, or folders of them on the machine "
    "that runs the flow) into a round; each applicant gets a receipt. Running it again imports "
    "nothing twice.",
)
@refusals_end_the_run
def import_applications_flow(
    round_id: str = round_param(),
    paths: list[str] = param(
        "Files and folders",
        "Application files (JSON) or folders of them, as paths on the machine that runs the flow.",
        min_length=1,
    ),
    batch_size: int = param("Batch size", "Files imported per transaction.", BATCH, ge=1, le=2000),
) -> ImportSummary:
    """Import application files (and the *.json files of folders) into a round.
    Re-running it imports nothing twice."""
    logger = get_run_logger()
    check_round(round_id)
    files = [str(p) for p in iter_application_files(paths)]
    now_iso = instant(None).isoformat()
    actor = started_by()
    results: list[FileImported] = []
    chunks = [files[i : i + batch_size] for i in range(0, len(files), batch_size)]
    for number, chunk in enumerate(chunks, start=1):
        results += import_application_batch(round_id, chunk, actor, now_iso)
        logger.info("batch %d: %d of %d files done", number, len(results), len(files))
    summary = ImportSummary(
        round=round_id,
        files=len(files),
        imported=sum(1 for r in results if r.created),
        already_imported=sum(1 for r in results if r.reference and not r.created),
        failed=sum(1 for r in results if not r.reference),
        results=tuple(results),
    )
    logger.info(
        "round %s: %d imported, %d already there, %d failed",
        round_id,
        summary.imported,
        summary.already_imported,
        summary.failed,
    )
    for item in results:
        if not item.reference:
            logger.warning("%s refused: %s", item.file, "; ".join(f"{e.path}: {e.message}" for e in item.errors))
    summarise(
        "import-applications",
        round_id,
        f"Import into {round_id}",
        [
            ("files", summary.files),
            ("imported", summary.imported),
            ("already imported", summary.already_imported),
            ("refused", summary.failed),
        ],
        [
            f"{item.file} refused: " + "; ".join(f"{e.path}: {e.message}" for e in item.errors)
            for item in results
            if not item.reference
        ][:50],
    )
    return summary
