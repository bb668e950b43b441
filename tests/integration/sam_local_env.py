"""Print, as JSON, the environment `sam local invoke <function> --env-vars <env.json>` gives the
function's container, resolved by SAM CLI's own code (SamLocalStackProvider,
SamFunctionProvider, LocalLambdaRunner._make_env_vars, EnvironmentVariables.resolve).

Runs under the SAM CLI tool environment's Python (it imports samcli), never the project's:
    <sam python> sam_local_env.py <template.yaml> <env.json> <function>
Credentials and region come from this process's environment, as `sam local` takes them from
the shell.
"""

from __future__ import annotations

import json
import os
import sys

from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider


def main() -> None:
    template, env_file, name = sys.argv[1:4]
    stacks, _ = SamLocalStackProvider.get_stacks(template)
    provider = SamFunctionProvider(stacks)
    function = provider.get(name)
    if function is None:
        raise SystemExit(f"{name}: no such function in {template}")
    with open(env_file) as f:
        overrides = json.load(f)
    runner = LocalLambdaRunner(
        local_runtime=None,  # type: ignore[arg-type]  # not invoked: only its environment
        function_provider=provider,
        cwd=os.getcwd(),
        real_path=os.getcwd(),
        aws_region=os.environ.get("AWS_DEFAULT_REGION"),
        env_vars_values=overrides,
    )
    print(json.dumps(runner._make_env_vars(function).resolve()))


if __name__ == "__main__":
    main()
