using System.Collections.Concurrent;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using static BpfJit.Tests.SkLookup.SkTestSupport;
using Errno = BpfJit.Runtime.Errno;

namespace BpfJit.Tests.SkLookup;

/// <summary>
/// Issue 17, items 2-4: a closed socket's members never reach its freed native block, every
/// <see cref="Sock.Close"/> returns only once the socket is out of every lookup, and binds are atomic per
/// port bucket. The racing tests run for <see cref="Stress.Duration"/> (BPFJIT_STRESS_SECONDS, 2 s by default).
/// </summary>
[TestFixture]
public unsafe class SocketLifetimeTests
{
    static uint ViewMark(Sock s) => *(uint*)((byte*)s.Handle + BpfSockLayout.Mark);

    [Test]
    public void SettersOfAClosedSocketThrowAndLeaveTheNextSocketAlone()
    {
        using var ns = new NetNamespace();
        int reused = 0;
        for (int i = 0; i < 200; i++)
        {
            var a = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Tcp);
            a.Close();
            MapEpoch.Collect();                 // a's block is freed here
            var b = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Tcp);
            if (b.Handle == a.Handle) reused++; // the allocator handed a's block to b
            Assert.Throws<ObjectDisposedException>(() => a.Mark = 0xdead);
            Assert.Throws<ObjectDisposedException>(() => a.Priority = 7);
            Assert.Throws<ObjectDisposedException>(() => a.BoundDevice = 3);
            Assert.Throws<ObjectDisposedException>(() => a.ReusePort = true);
            Assert.That(a.ProgramReferences, Is.Zero, "a closed socket reports no program references");
            Assert.That(ViewMark(b), Is.Zero, "b's view is b's own");
            b.Close();
        }
        TestContext.Out.WriteLine($"{reused} of 200 closed blocks were handed to the next socket");
    }

    [Test]
    public void SettersRacingCloseOnlySeeObjectDisposed()
    {
        using var ns = new NetNamespace();
        Sock current = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Udp);
        var errors = new ConcurrentQueue<Exception>();
        long sets = 0, disposed = 0;
        using var stop = new CancellationTokenSource(Stress.Duration);
        var setters = Enumerable.Range(0, 2).Select(t => Task.Run(() =>
        {
            uint v = 0;
            while (!stop.IsCancellationRequested)
            {
                var s = Volatile.Read(ref current);
                try
                {
                    s.Mark = ++v;
                    s.Priority = v;
                    s.BoundDevice = (int)(v & 7);
                    _ = s.ProgramReferences;
                    Interlocked.Increment(ref sets);
                }
                catch (ObjectDisposedException) { Interlocked.Increment(ref disposed); }
                catch (Exception e) { errors.Enqueue(e); }
            }
        })).ToArray();
        while (!stop.IsCancellationRequested)
        {
            var next = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Udp);
            Volatile.Write(ref current, next);
            foreach (var s in ns.Sockets.Sockets) if (s != next) s.Close();
            MapEpoch.Collect();
        }
        Task.WaitAll(setters);
        TestContext.Out.WriteLine($"{sets} setter rounds, {disposed} refused on closed sockets");
        Assert.That(errors, Is.Empty);
    }

    [Test]
    public void EveryCloseReturnsAfterTheSocketLeftTheLookups()
    {
        using var ns = new NetNamespace();
        for (int round = 0; round < 20; round++)
        {
            var s = Tcp(ns, "127.0.0.1:7100");
            using var inHook = new ManualResetEventSlim();
            // The first Close runs the hooks before it unlinks the socket from the table: hold it there.
            s.OnClose(_ => { inHook.Set(); Thread.Sleep(20); });
            var first = Task.Run(s.Close);
            inHook.Wait();
            s.Close();
            Assert.That(s.IsClosed, "the second Close returned before the socket was closed");
            var r = ns.Lookup(Pkt("tcp", "10.0.0.1:1000", "127.0.0.1:7100"));
            Assert.That(r.Socket, Is.Not.SameAs(s), "a lookup after Close returned found the socket");
            first.Wait();
        }
    }

    [Test]
    public void ConcurrentBindsToOneAddressGiveOneSocketTheAddress([Values("127.0.0.1:7200", "127.0.0.1:0")] string address)
    {
        using var ns = new NetNamespace();
        var ep = Ep(address);
        const int Threads = 3;
        var socks = new Sock[Threads];
        var failed = new bool[Threads];
        long rounds = Stress.Rounds(Threads, round =>
        {
            for (int i = 0; i < Threads; i++) socks[i] = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Udp);
        }, (round, i) =>
        {
            failed[i] = false;
            try { socks[i].Bind(ep); } catch (SocketErrorException e) when (e.Errno == Errno.EADDRINUSE) { failed[i] = true; }
        }, round =>
        {
            var bound = socks.Where((s, i) => !failed[i]).Select(s => s.Local).ToArray();
            Assert.That(bound, Is.Unique, $"round {round}: two sockets bound the same address");
            if (ep.Port != 0) Assert.That(bound, Has.Length.EqualTo(1), $"round {round}: exactly one bind succeeds");
            foreach (var s in socks) s.Close();
        });
        TestContext.Out.WriteLine($"{rounds} rounds");
    }

    [Test]
    public void CloseRacingBindLeavesNothingBehind()
    {
        using var ns = new NetNamespace();
        long bound = 0;
        var keep = Tcp(ns, "127.0.0.1:7300", reuseport: true);     // the group outlives every round
        Sock s = null!;
        long rounds = Stress.Rounds(2, round =>
        {
            s = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Tcp);
            s.ReusePort = true;
        }, (round, i) =>
        {
            if (i == 0)
            {
                s.Close();
                return;
            }
            try { s.Bind(Ep("127.0.0.1:7300")); }
            catch (SocketErrorException e) when (e.Errno == Errno.EBADF) { }
        }, round =>
        {
            if (s.Local != null) bound++;
            Assert.That(s.IsClosed);
            Assert.That(keep.ReuseportGroup!.Members, Does.Not.Contain(s), $"round {round}: the closed socket stayed in its group");
        });
        TestContext.Out.WriteLine($"{rounds} rounds, {bound} bound before the close");
    }
}

/// <summary>How long the racing tests run: BPFJIT_STRESS_SECONDS (default 2 s).</summary>
static class Stress
{
    /// <summary>
    /// Runs rounds until <see cref="Duration"/> ends: <paramref name="setUp"/>, then <paramref name="act"/> on
    /// <paramref name="threads"/> dedicated threads released together by a spinning start line (so the actions
    /// overlap within a fraction of a microsecond), then <paramref name="check"/>. Returns the rounds run.
    /// </summary>
    public static long Rounds(int threads, Action<long> setUp, Action<long, int> act, Action<long> check)
    {
        long start = 0, done = 0, round = 0;
        bool stop = false;
        var errors = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
        var workers = Enumerable.Range(0, threads).Select(i => new Thread(() =>
        {
            for (long r = 1; ; r++)
            {
                var spin = new SpinWait();
                while (Volatile.Read(ref start) < r && !Volatile.Read(ref stop)) spin.SpinOnce(-1);
                if (Volatile.Read(ref stop)) return;
                try { act(r, i); } catch (Exception e) { errors.Enqueue(e); }
                Interlocked.Increment(ref done);
            }
        }) { IsBackground = true }).ToArray();
        foreach (var w in workers) w.Start();
        var sw = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            while (sw.Elapsed < Duration && errors.IsEmpty)
            {
                round++;
                setUp(round);
                Volatile.Write(ref start, round);
                var spin = new SpinWait();
                while (Volatile.Read(ref done) < round * threads) spin.SpinOnce(-1);
                check(round);
            }
        }
        finally
        {
            Volatile.Write(ref stop, true);
            foreach (var w in workers) w.Join();
        }
        Assert.That(errors, Is.Empty);
        return round;
    }

    public static TimeSpan Duration { get; } = TimeSpan.FromSeconds(
        double.TryParse(Environment.GetEnvironmentVariable("BPFJIT_STRESS_SECONDS"), System.Globalization.CultureInfo.InvariantCulture, out double s) && s > 0 ? s : 2);
}
