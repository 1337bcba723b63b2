using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(BpfJit.Perf.VerifierBenchmarks).Assembly).Run(args);
