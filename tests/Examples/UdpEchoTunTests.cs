using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using BpfJit.Examples.UdpEcho;
using BpfJit.IlEmitter;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.Examples;

/// <summary>
/// The UdpEcho stack on a real TUN device: the device is moved into a fresh network namespace where the
/// kernel sends real datagrams to the stack from ordinary UDP sockets. Needs root, iproute2 and
/// /dev/net/tun; skipped with the reason otherwise. The namespace and the device are removed in all cases.
/// </summary>
[NonParallelizable]
public partial class UdpEchoTunTests
{
    const int CLONE_NEWNET = 0x40000000;

    // A failure bound for each awaited reply, not a speed requirement.
    const int ReplyBoundMs = 10_000;

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static partial int SetNs(int fd, int nstype);

    static (int Code, string Output) Run(string file, string arguments)
    {
        var psi = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output.Trim());
    }

    static string? FindIp() =>
        new[] { "/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip" }.FirstOrDefault(File.Exists);

    static void Setup(string ip, string arguments)
    {
        var (code, output) = Run(ip, arguments);
        if (code != 0) Assert.Ignore($"'ip {arguments}' failed ({code}): {output}");
    }

    // Sockets belong to the namespace of the thread that creates them: create them on a thread that
    // entered the namespace, then use them from anywhere.
    static (Socket V4, Socket V6) ClientSocketsIn(string ns)
    {
        Socket? v4 = null, v6 = null;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var handle = File.OpenHandle($"/run/netns/{ns}");
                if (SetNs((int)handle.DangerousGetHandle(), CLONE_NEWNET) != 0)
                    throw new IOException($"setns {ns}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
                v4 = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                v4.Bind(new IPEndPoint(IPAddress.Parse("10.77.0.254"), 0));
                v6 = new Socket(AddressFamily.InterNetworkV6, SocketType.Dgram, ProtocolType.Udp);
                v6.Bind(new IPEndPoint(IPAddress.Parse("fd77::fe"), 0));
            }
            catch (Exception e) when (e is IOException or SocketException or UnauthorizedAccessException)
            {
                error = e;
            }
        });
        thread.Start();
        thread.Join();
        if (error != null)
        {
            v4?.Dispose();
            v6?.Dispose();
            Assert.Ignore($"cannot open sockets in namespace {ns}: {error.Message}");
        }
        foreach (var s in new[] { v4!, v6! }) s.ReceiveTimeout = ReplyBoundMs;
        return (v4!, v6!);
    }

    [Test]
    public void RealDatagramsReachTheSteeredHandlersAndRefusedPortsGetNoAnswer()
    {
        if (!OperatingSystem.IsLinux()) Assert.Ignore("TUN devices and network namespaces are Linux-only");
        if (!Environment.IsPrivilegedProcess) Assert.Ignore("needs root (CAP_NET_ADMIN) for a network namespace and a TUN device");
        string ip = FindIp() ?? "";
        if (ip.Length == 0) Assert.Ignore("iproute2's 'ip' is not installed");

        string ns = $"bpfjit-echo-{Environment.ProcessId}";
        string dev = $"bje{Environment.ProcessId % 1_000_000}";
        var (code, output) = Run(ip, $"netns add {ns}");
        if (code != 0) Assert.Ignore($"'ip netns add' is not permitted here ({code}): {output}");
        try
        {
            TunDevice tun;
            try { tun = TunDevice.Open(dev); }
            catch (TunException e) { Assert.Ignore($"TUN devices are not permitted here: {e.Message}"); return; }
            using (tun)
            {
                Setup(ip, $"link set {dev} netns {ns}");
                Setup(ip, $"-n {ns} addr add 10.77.0.254/24 dev {dev}");
                Setup(ip, $"-n {ns} -6 addr add fd77::fe/64 dev {dev} nodad");
                Setup(ip, $"-n {ns} link set {dev} up");
                Exercise(ns, tun);
            }
        }
        finally
        {
            Run(ip, $"netns del {ns}");
        }
        Assert.That(Run(ip, "netns list").Output, Does.Not.Contain(ns), "the namespace is removed");
    }

    static void Exercise(string ns, TunDevice tun)
    {
        using var stack = EchoService.Create(Path.Combine(Paths.RepoRoot, "examples/UdpEcho/bpf/steer.o"), JitEngine.Instance);
        var events = new ConcurrentQueue<PacketEvent>();
        stack.PacketProcessed += events.Enqueue;
        using var stop = new CancellationTokenSource();
        var runner = Task.Factory.StartNew(() => stack.Run(tun, stop.Token), TaskCreationOptions.LongRunning);
        var (v4, v6) = ClientSocketsIn(ns);
        try
        {
            using (v4)
            using (v6)
            {
                Check(v4, "10.77.0.1", "10.77.0.2", events);
                Check(v6, "fd77::1", "fd77::2", events);
            }
        }
        finally
        {
            stop.Cancel();
            // The reader polls in 100 ms steps; the bound only keeps a broken stack from hanging the run.
            Assert.That(runner.Wait(ReplyBoundMs), Is.True, "the stack stopped");
        }
        Assert.That(runner.Exception, Is.Null);
    }

    // Sends one datagram per case, then a sentinel. The stack reads the device in order, so once every
    // expected reply (the sentinel's included) is in, every datagram sent before the sentinel was handled.
    static void Check(Socket client, string one, string two, ConcurrentQueue<PacketEvent> events)
    {
        var cases = new (string Host, int Port, string? Answer)[]
        {
            (one, 7003, "range"), (one, 7009, "range"), (two, 1234, "address"), (two, 5000, "address"),
            (one, 5000, "plain"), (one, 9000, "address"),
            (one, 7777, null), (two, 7777, null), // SK_DROP
            (one, 6000, null),                    // no socket
            (one, 5000, "plain"),                 // the sentinel
        };
        var expected = new Dictionary<string, (IPEndPoint From, string Answer)>();
        var refused = new HashSet<string>();
        for (int i = 0; i < cases.Length; i++)
        {
            var to = new IPEndPoint(IPAddress.Parse(cases[i].Host), cases[i].Port);
            string token = $"{i}-{Guid.NewGuid():N}";
            if (cases[i].Answer is { } name) expected[token] = (to, $"{name}: {token}");
            else refused.Add(token);
            client.SendTo(Encoding.ASCII.GetBytes(token), to);
        }

        var buffer = new byte[2048];
        var received = new List<(string Text, IPEndPoint From)>();
        while (expected.Keys.Any(t => !received.Any(r => r.Text.EndsWith(t, StringComparison.Ordinal))))
        {
            EndPoint from = new IPEndPoint(client.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0);
            int n;
            try { n = client.ReceiveFrom(buffer, ref from); }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
            {
                Assert.Fail($"{client.AddressFamily}: no reply within {ReplyBoundMs} ms; got [{string.Join(", ", received.Select(r => r.Text))}]; " +
                    $"stack: {string.Join(" | ", events)}");
                return;
            }
            received.Add((Encoding.ASCII.GetString(buffer, 0, n), (IPEndPoint)from));
        }
        foreach (var (token, (to, answer)) in expected)
        {
            var reply = received.Single(r => r.Text.EndsWith(token, StringComparison.Ordinal));
            Assert.That(reply.Text, Is.EqualTo(answer), $"the handler that answered {token} sent to {to}");
            Assert.That(reply.From, Is.EqualTo(to), "the reply comes from the address and port the datagram was sent to");
        }
        Assert.That(received.Where(r => refused.Any(t => r.Text.EndsWith(t, StringComparison.Ordinal))), Is.Empty,
            "refused ports get no answer");
        Assert.That(received, Has.Count.EqualTo(expected.Count), "one reply per answered datagram");
        Assert.That(client.Available, Is.Zero, "nothing else was sent back");

        // The stack's own record: it wrote nothing for the refused datagrams.
        string family = client.AddressFamily == AddressFamily.InterNetwork ? one : $"[{one}]";
        var mine = events.Where(e => e.Packet.Contains(family, StringComparison.Ordinal) ||
                                     e.Packet.Contains(client.AddressFamily == AddressFamily.InterNetwork ? two : $"[{two}]", StringComparison.Ordinal)).ToList();
        Assert.That(mine.Count(e => e.Verdict == Verdict.Refused), Is.EqualTo(2), string.Join(" | ", mine));
        Assert.That(mine.Count(e => e.Verdict == Verdict.NoSocket), Is.EqualTo(1), string.Join(" | ", mine));
        Assert.That(mine.Count(e => e.Verdict == Verdict.Answered), Is.EqualTo(expected.Count), string.Join(" | ", mine));
    }
}
