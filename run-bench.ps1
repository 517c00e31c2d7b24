#!/usr/bin/env pwsh
# Runs the benchmark harness: a thin wrapper that forwards its arguments to
#   dotnet run -c Release --project bench -- <command> [options]
# (see bench/README.md). PowerShell cannot be installed on the build machines, so keep logic out of here.
param([Parameter(ValueFromRemainingArguments = $true)] [string[]] $BenchArgs)
$ErrorActionPreference = 'Stop'
& dotnet run -c Release --project (Join-Path $PSScriptRoot 'bench') -- @BenchArgs
exit $LASTEXITCODE
