#!/usr/bin/env pwsh
# Runs the benchmark suite. A thin wrapper for PowerShell users; on machines without PowerShell run
# the same thing directly:  python3 bench/l4/compare.py [options]   (see bench/l4/README.md)
param([Parameter(ValueFromRemainingArguments = $true)] [string[]] $BenchArgs)
$ErrorActionPreference = 'Stop'
& python3 (Join-Path $PSScriptRoot 'bench/l4/compare.py') @BenchArgs
exit $LASTEXITCODE
