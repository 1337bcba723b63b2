using System.Runtime.InteropServices;
using BpfJit.Frontend;
using BpfJit.Frontend.Conformance;

namespace BpfJit.Runtime.Conformance;

/// <summary>The outcome of one conformance test.</summary>
public enum ConformanceStatus
{
    /// <summary>r0 (or the error) matched.</summary>
    Pass,
    /// <summary>It did not match, or the program could not run.</summary>
    Fail,
    /// <summary>The file is not a test this runner can judge.</summary>
    Skip,
    /// <summary>The file is malformed (bad input, not a failed test).</summary>
    Error,
}

/// <summary>One test's outcome with a human-readable detail.</summary>
public sealed record ConformanceResult(string Name, ConformanceStatus Status, string Detail);

/// <summary>
/// Runs bpf_conformance test vectors on an engine with the suite's machine model: r1 = input
/// memory (0 when none), r2 = its length, 512-byte stack, helper 5 = unwind.
/// </summary>
public static class ConformanceRunner
{
    /// <summary>Parses and runs one <c>.data</c> file; a malformed file gives an <see cref="ConformanceStatus.Error"/> result. Tests above cpu version <paramref name="cpu"/> are skipped.</summary>
    public static ConformanceResult RunFile(string path, IBpfEngine engine, HelperTable? helpers = null, int cpu = 4)
    {
        ConformanceFile test;
        try
        {
            test = ConformanceFile.Load(path);
        }
        catch (BpfException e)
        {
            return new ConformanceResult(path, ConformanceStatus.Error, e.Message);
        }
        return Run(test, engine, helpers, cpu);
    }

    /// <summary>Runs one parsed test; a test that needs a cpu version above <paramref name="cpu"/> is skipped.</summary>
    public static unsafe ConformanceResult Run(ConformanceFile test, IBpfEngine engine, HelperTable? helpers = null, int cpu = 4)
    {
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(engine);
        if (test.SkipReason != null) return new ConformanceResult(test.Name, ConformanceStatus.Skip, test.SkipReason);
        int needed = CpuVersion.Required(test.Program!);
        if (needed > cpu) return new ConformanceResult(test.Name, ConformanceStatus.Skip, $"needs cpu v{needed}");
        helpers ??= HelperTable.Bench();
        ulong r0;
        try
        {
            var entry = engine.Prepare(test.Program!, helpers);
            r0 = RunWithMemory(entry, test.Memory);
        }
        catch (BpfException e)
        {
            if (test.ExpectedError != null)
                return new ConformanceResult(test.Name, ConformanceStatus.Pass, $"error: {e.Message}");
            return new ConformanceResult(test.Name, ConformanceStatus.Fail, $"{e.Message}");
        }
        if (test.ExpectedError != null)
            return new ConformanceResult(test.Name, ConformanceStatus.Fail, $"expected error '{test.ExpectedError}', got r0 = 0x{r0:x}");
        return r0 == test.ExpectedResult
            ? new ConformanceResult(test.Name, ConformanceStatus.Pass, $"0x{r0:x}")
            : new ConformanceResult(test.Name, ConformanceStatus.Fail, $"expected 0x{test.ExpectedResult:x}, got 0x{r0:x}");
    }

    /// <summary>Copies <paramref name="memory"/> to native memory and calls the entry with r1 = its address, r2 = its length.</summary>
    public static unsafe ulong RunWithMemory(BpfEntry entry, ReadOnlySpan<byte> memory)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (memory.Length == 0) return entry(0, 0);
        byte* native = (byte*)NativeMemory.Alloc((nuint)memory.Length);
        try
        {
            memory.CopyTo(new Span<byte>(native, memory.Length));
            Checked.MemoryRegions.Register((ulong)native, memory.Length, Checked.MemoryRegionKind.Context);
            return entry((ulong)native, (ulong)memory.Length);
        }
        finally
        {
            Checked.MemoryRegions.Unregister((ulong)native);
            NativeMemory.Free(native);
        }
    }

    /// <summary>Expands files and directories (every <c>*.data</c> inside, sorted) into a list of files.</summary>
    public static IReadOnlyList<string> ExpandPaths(IEnumerable<string> paths)
    {
        var files = new List<string>();
        foreach (var p in paths)
        {
            if (Directory.Exists(p)) files.AddRange(Directory.GetFiles(p, "*.data").Order(StringComparer.Ordinal));
            else if (File.Exists(p)) files.Add(p);
            else throw new BpfException($"{p}: no such file or directory");
        }
        return files;
    }
}
