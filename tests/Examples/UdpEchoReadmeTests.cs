using System.Diagnostics;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Examples;

/// <summary>
/// examples/UdpEcho/README.md's "Run it" block, run by bash exactly as written from the repository root:
/// it builds the example, starts it on a TUN device in a scratch namespace, and the datagrams netcat sends
/// are answered by the handlers the README names (and the one to port 7777 by none). Needs root, iproute2,
/// OpenBSD netcat and /dev/net/tun; skipped with the reason otherwise. The namespace is deleted in all cases.
/// </summary>
[NonParallelizable]
public class UdpEchoReadmeTests
{
    const string Namespace = "echo";

    static string Block()
    {
        string text = File.ReadAllText(Path.Combine(Paths.RepoRoot, "examples", "UdpEcho", "README.md")).ReplaceLineEndings("\n");
        int section = text.IndexOf("## Run it", StringComparison.Ordinal);
        Assert.That(section, Is.GreaterThanOrEqualTo(0), "the README has a 'Run it' section");
        int start = text.IndexOf("```sh\n", section, StringComparison.Ordinal) + "```sh\n".Length;
        return text[start..text.IndexOf("```", start, StringComparison.Ordinal)];
    }

    static string? Find(string name, params string[] directories) =>
        directories.Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    [Test]
    public void TheRunItBlockWorksPastedAsIs()
    {
        string block = Block();
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root") Assert.Ignore("needs Linux and root (a TUN device in a network namespace)");
        if (!File.Exists("/dev/net/tun")) Assert.Ignore("no /dev/net/tun");
        string? ip = Find("ip", "/usr/sbin", "/sbin", "/usr/bin", "/bin");
        if (ip == null) Assert.Ignore("iproute2 ('ip') is not installed");
        if (Find("nc", "/usr/bin", "/bin", "/usr/local/bin") == null) Assert.Ignore("netcat ('nc', Debian: netcat-openbsd) is not installed");
        if (File.Exists($"/run/netns/{Namespace}")) Assert.Ignore($"a network namespace named '{Namespace}' already exists here");

        try
        {
            var psi = new ProcessStartInfo("bash", ["-c", block])
            {
                WorkingDirectory = Paths.RepoRoot,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            using var process = Process.Start(psi)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromMinutes(10)))
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail("the README's block did not finish in 10 minutes");
            }
            string output = stdout.Result + stderr.Result;
            if (output.Contains("Operation not permitted", StringComparison.Ordinal) && output.Contains("netns", StringComparison.Ordinal))
                Assert.Ignore($"network namespaces are not permitted here: {output.Trim()}");
            Assert.Multiple(() =>
            {
                Assert.That(output, Does.Contain("range: hi"), "port 7003 is answered by the range handler");
                Assert.That(output, Does.Contain("address: hi"), "fd77::2 is answered by the address handler");
                Assert.That(output, Does.Not.Contain("blocked:"), "port 7777 is refused");
                Assert.That(output, Does.Not.Contain("Cannot find device"), "the block waits for the device");
                Assert.That(output, Does.Contain("udp 10.77.0.254:").And.Contain("-> 10.77.0.1:7777: refused"), "the stack logs each datagram");
            });
        }
        finally
        {
            if (File.Exists($"/run/netns/{Namespace}"))
                using (var del = Process.Start(new ProcessStartInfo(ip, ["netns", "del", Namespace]) { UseShellExecute = false }))
                    del!.WaitForExit();
        }
    }
}
