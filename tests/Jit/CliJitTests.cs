using System.Diagnostics;
using BpfJit.Frontend;
using BpfJit.Frontend.Conformance;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Jit;

/// <summary>The JIT through the command line: <c>dump</c>, <c>conformance --engine jit</c>, the plugin verb and its script.</summary>
[TestFixture]
public class CliJitTests
{
    static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = BpfJit.Cli.Cli.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Test]
    public void DumpIlInterleavesTheProgram()
    {
        string file = Path.Combine(Paths.RequireShared("bench"), "straight.data");
        var (code, output, _) = Cli("dump", file, "--il");
        Assert.That(code, Is.EqualTo(0));
        Assert.That(output, Does.Contain("; 0: r2 = *(u32 *)(r1 + 0)"));
        Assert.That(output, Does.Contain("; 10: exit"));
        Assert.That(output, Does.Contain("ldind.u4"));
    }

    [Test]
    public void DumpCsAndDllFromRawBytecode()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"bpfjit-dump-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            string bin = Path.Combine(dir, "prog.bin");
            File.WriteAllBytes(bin, Encoder.Encode(Assembler.Assemble("mov %r0, 41\nadd %r0, 1\nexit")));
            var (code, output, _) = Cli("dump", bin, "--cs");
            Assert.That(code, Is.EqualTo(0));
            Assert.That(output, Does.Contain("static ulong Run(JitClosure closure, ulong r1, ulong r2)"));
            string dll = Path.Combine(dir, "out", "prog.dll");
            (code, _, _) = Cli("dump", bin, "--dll", dll);
            Assert.That(code, Is.EqualTo(0));
            Assert.That(new FileInfo(dll).Length, Is.GreaterThan(0));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void DumpRejectsBadInput()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"bpfjit-dump-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            string elf = Path.Combine(dir, "prog.o");
            File.WriteAllBytes(elf, [0x7f, (byte)'E', (byte)'L', (byte)'F', 2, 1, 1, 0]);
            var (code, _, err) = Cli("dump", elf);
            Assert.That(code, Is.EqualTo(2));
            Assert.That(err, Does.Contain("prog.o"));
            string truncated = Path.Combine(dir, "short.bin");
            File.WriteAllBytes(truncated, [0x95, 0, 0]);
            (code, _, err) = Cli("dump", truncated);
            Assert.That(code, Is.EqualTo(2));
            Assert.That(err, Does.Contain("short.bin").And.Contain("not a whole number of 8-byte instruction slots"));
            (code, _, err) = Cli("dump");
            Assert.That(code, Is.EqualTo(2));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void DumpCompilesAnElfProgramVerifiedAndSpecialised()
    {
        string obj = Path.Combine(Paths.RepoRoot, "tests", "programs", "subprog_calls.o");
        if (!File.Exists(obj)) Assert.Ignore("tests/programs/subprog_calls.o is not in this tree");
        var (code, output, err) = Cli("dump", obj, "--il");
        Assert.That(code, Is.EqualTo(0), err);
        Assert.That(output, Does.Contain("; 0: "));
        Assert.That(output, Does.Contain("switch"), "subprogram calls return through the frame-return switch");
        // A program with maps: the object's maps are created, the program verified, bound and specialised.
        string withMaps = Path.Combine(Paths.RepoRoot, "tests", "programs", "redir_port.o");
        (code, output, err) = Cli("dump", withMaps, "--program", "redir_port", "--il");
        Assert.That(code, Is.EqualTo(0), err);
        Assert.That(output, Does.Contain("specialised with verifier facts"));
        Assert.That(output, Does.Contain("; ctx load local_port"));
        Assert.That(output, Does.Contain("; SOCKMAP lookup: direct call on map redir_map"));
        // The dispatcher leaves its 'destinations' map unsized: --map sizes it, as a scenario does.
        string dispatcher = Path.Combine(Paths.RepoRoot, "tests", "programs", "dispatcher.o");
        (code, _, err) = Cli("dump", dispatcher, "--il");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain("destinations"));
        (code, output, err) = Cli("dump", dispatcher, "--il", "--map", "destinations:257:8:1024");
        Assert.That(code, Is.EqualTo(0), err);
        Assert.That(output, Does.Contain("; LPM_TRIE lookup: direct call on map bindings"));
        Assert.That(output, Does.Contain("; PERCPU_ARRAY lookup inlined"));
        // A program the verifier rejects is not compiled.
        (code, _, err) = Cli("dump", withMaps, "--program", "no_such_program");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain("no_such_program"));
    }

    [Test]
    public void ConformanceOnTheJitPassesAll()
    {
        string dir = Paths.RequireShared("conformance");
        var (code, output, _) = Cli("conformance", dir, "--engine", "jit", "--quiet");
        Assert.That(output.TrimEnd(), Does.EndWith("313 passed, 0 failed"));
        Assert.That(code, Is.EqualTo(0));
    }

    [Test]
    public void PluginVerbIsHiddenFromHelp()
    {
        var (_, output, _) = Cli("--help");
        Assert.That(output, Does.Contain("dump"));
        Assert.That(output, Does.Not.Contain("plugin"));
    }

    // ---- tools/bpf-conformance-plugin, run through bash exactly as the bpf_conformance runner would ----

    static string Hex(byte[] bytes) => string.Concat(bytes.Select(b => $"{b:x2}  "));

    static (int Code, string Out, string Err) Plugin(string stdin, params string[] args)
    {
        string? bash = new[] { "/bin/bash", "/usr/bin/bash" }.FirstOrDefault(File.Exists);
        if (bash == null) Assert.Ignore("bash is not installed: the plugin script cannot run here");
        var psi = new ProcessStartInfo(bash!)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.ArgumentList.Add(Path.Combine(Paths.RepoRoot, "tools", "bpf-conformance-plugin"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        // The tests' own build of the CLI sits beside the test assembly.
        psi.Environment["BPFJIT_DLL"] = Path.Combine(AppContext.BaseDirectory, "bpfjit.dll");
        using var process = Process.Start(psi)!;
        process.StandardInput.Write(stdin + "\n");
        process.StandardInput.Close();
        string output = process.StandardOutput.ReadToEnd();
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output, error);
    }

    static IEnumerable<TestCaseData> PluginCases()
    {
        foreach (var option in new[] { "--jit", "--interpret" })
            foreach (var name in new[] { "add", "ldxb", "call_unwind_fail", "callx", "call_local", "lock_cmpxchg", "mem-len" })
                yield return new TestCaseData(option, name).SetName($"plugin {option} {name}");
    }

    [TestCaseSource(nameof(PluginCases))]
    public void PluginScriptRunsConformanceFiles(string option, string name)
    {
        string file = Path.Combine(Paths.RequireShared("conformance"), name + ".data");
        var test = ConformanceFile.Load(file);
        var args = new List<string>();
        if (test.Memory.Length > 0) args.Add(Hex(test.Memory));
        args.Add(option);
        var (code, output, error) = Plugin(Hex(Encoder.Encode(test.Program)), args.ToArray());
        Assert.That(code, Is.EqualTo(0), error);
        Assert.That(Convert.ToUInt64(output.Trim(), 16), Is.EqualTo(test.ExpectedResult));
    }

    [Test]
    public void PluginScriptReportsErrors()
    {
        // call 99: an unknown helper
        var (code, output, error) = Plugin(Hex(Encoder.Encode(Assembler.Assemble("call 99\nexit"))), "--jit");
        Assert.That(code, Is.Not.EqualTo(0));
        Assert.That(output + error, Does.Contain("unknown#99"));
        (code, _, error) = Plugin("95  00  00  00  00  00  00  00", "--elf");
        Assert.That(code, Is.Not.EqualTo(0));
        Assert.That(error, Does.Contain("not supported"));
        (code, _, error) = Plugin("zz", "--interpret");
        Assert.That(code, Is.Not.EqualTo(0));
        Assert.That(error, Does.Contain("not a hex byte"));
    }
}
