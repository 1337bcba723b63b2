using System.Diagnostics;
using BpfJit.Frontend;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Jit;

/// <summary>
/// A profiler tells programs apart: with .NET's perf map on (DOTNET_PerfMapEnabled=1), a <c>bpfjit run</c> child
/// writes /tmp/perf-PID.map, where the program's code is listed under the kernel's JIT image name
/// <c>bpf_prog_&lt;tag&gt;_&lt;name&gt;</c> and its callback under that name and <c>_F&lt;n&gt;</c> (docs/jit.md, "Names").
/// </summary>
[TestFixture]
public class PerfMapTests
{
    [Test]
    public void PerfMapNamesTheProgramItRan()
    {
        // main (func#0) hands cb (func#1) to bpf_loop; the file's name is the program's name.
        var program = MapPrograms.Assemble("""
            stdw [%r10-8], 0
            mov %r1, 4
            ldfunc %r2, cb
            mov %r3, %r10
            add %r3, -8
            mov %r4, 0
            call 181
            mov %r0, 1
            exit
            cb:
            mov %r0, 0
            exit
            """);
        string dir = Path.Combine(Path.GetTempPath(), $"bpfjit-perfmap-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        string? map = null;
        try
        {
            string file = Path.Combine(dir, "loop_and_callback_prog.bin");
            File.WriteAllBytes(file, Encoder.Encode(program));
            var psi = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "bpfjit.dll"), "run", file, "--engine", "jit",
                         "--proto", "tcp", "--from", "10.0.0.1:5555", "--to", "1.2.3.4:80" })
                psi.ArgumentList.Add(a);
            psi.Environment["DOTNET_PerfMapEnabled"] = "1";
            using var process = Process.Start(psi)!;
            string output = process.StandardOutput.ReadToEnd();
            string error = process.StandardError.ReadToEnd();
            process.WaitForExit();
            Assert.That(process.ExitCode, Is.EqualTo(0), error);
            Assert.That(output, Does.Contain("retval 1 (SK_PASS)"));
            map = $"/tmp/perf-{process.Id}.map";
            if (!File.Exists(map)) Assert.Ignore($"the runtime wrote no {map} (DOTNET_PerfMapEnabled=1 writes it on Linux only)");
            string symbol = $"bpf_prog_{ProgramTag.Compute(program)}_loop_and_callba";
            string text = File.ReadAllText(map);
            Assert.That(text, Does.Contain($"dynamicClass::{symbol}("), "the program, its name cut to 15 characters as the kernel keeps it");
            Assert.That(text, Does.Contain($"dynamicClass::{symbol}_F1("), "its callback");
            Assert.That(text, Does.Not.Contain("bpf_program"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
            if (map != null && File.Exists(map)) File.Delete(map);
        }
    }
}
