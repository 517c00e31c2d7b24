using BenchmarkDotNet.Running;
using Forwarder.Bench.Micro;

// Not typeof(Program): forwarder and bench also have a top-level Program, visible here through InternalsVisibleTo.
BenchmarkSwitcher.FromAssembly(typeof(PickBenchmarks).Assembly).Run(args);
