"""JUnit XML of a run (one testsuite per agent type, one testcase per scenario), for CI."""

from pathlib import Path
from typing import Any
from xml.etree import ElementTree


def junit_xml(runs: list[dict[str, Any]]) -> str:
    """A scenario below its required pass rate is a `failure` listing its failed expectations;
    expectations skipped (a rubric without a judge) are named in its `system-out`."""
    root = ElementTree.Element("testsuites")
    for run in runs:
        scenarios = run["scenarios"]
        suite = ElementTree.SubElement(
            root,
            "testsuite",
            name=run["agent_id"],
            tests=str(len(scenarios)),
            failures=str(sum(not s["passed"] for s in scenarios)),
            time=f"{run['wall_time_s']:.3f}",
        )
        for scenario in scenarios:
            case = ElementTree.SubElement(
                suite,
                "testcase",
                classname=f"{run['agent_id']}@v{run['version']}",
                name=scenario["name"],
                time=f"{scenario['wall_time_s']:.3f}",
            )
            if not scenario["passed"]:
                failure = ElementTree.SubElement(
                    case,
                    "failure",
                    message=f"pass rate {scenario['pass_rate']:.2f} below "
                    f"{scenario['required_pass_rate']:.2f}",
                )
                failure.text = "\n".join(
                    f"attempt {f['attempt']}: {f['expectation']}: {f['detail']}"
                    for f in scenario["failures"]
                )
            if scenario["skipped"]:
                out = ElementTree.SubElement(case, "system-out")
                out.text = "skipped: " + ", ".join(scenario["skipped"])
    return ElementTree.tostring(root, encoding="unicode", xml_declaration=True)


def write_junit(path: Path, runs: list[dict[str, Any]]) -> None:
    path.write_text(junit_xml(runs), encoding="utf-8")
