using BpfJit.Frontend.Elf;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;
using static BpfJit.Tests.SkLookup.SkTestSupport;

namespace BpfJit.Tests.SkLookup;

/// <summary>
/// A link detached (or updated) while lookups run: the kernel's lookup reads the netns run array under RCU, and a
/// program that leaves it is freed, and its maps put, only after a grace period (bpf_prog_put's RCU callback). So a
/// lookup sees either the old array or the new one, and one that saw the old one runs its programs to the end on live
/// maps. Here one thread looks up while another attaches, swaps and detaches programs whose maps and loader reference
/// are already gone (the link's is the last): no lookup may fault (a fault is an SK_DROP, so a refusal) or see anything
/// but the program's redirect or, with no program, no socket. Bounded by cycles, not time.
/// </summary>
[TestFixture]
public class DetachRaceTests
{
    const int Cycles = 500;
    const int Port = 7000;

    // redir_port-like: ports[local_port] names a SOCKMAP slot; the program assigns its socket and passes.
    static SkLookupProgram Redirect(string engine, string name, Sock target)
    {
        var ports = MapFactory.Create(MapType.Hash, 4, 4, 4, 0, "ports");
        var sockets = (SockMap)MapFactory.Create(MapType.SockMap, 4, 8, 2, 0, "redir_map");
        Assert.That(ports.Update(BitConverter.GetBytes((uint)Port), BitConverter.GetBytes(1u)), Is.Zero);
        Assert.That(sockets.Update(1, target), Is.Zero);
        var program = Load(engine, $"""
            mov %r6, %r1
            ldxw %r2, [%r6+{SkLookupLayout.LocalPort}]
            stxw [%r10-4], %r2
            mov %r2, %r10
            add %r2, -4
            lddw %r1, 0x{ports.Handle:x}
            call 1
            jeq %r0, 0, pass
            ldxw %r2, [%r0+0]
            stxw [%r10-8], %r2
            lddw %r1, 0x{sockets.Handle:x}
            mov %r2, %r10
            add %r2, -8
            call 1
            jeq %r0, 0, pass
            mov %r7, %r0
            mov %r1, %r6
            mov %r2, %r7
            mov %r3, 0
            call 124
            mov %r1, %r7
            call 86
            pass:
            mov %r0, 1
            exit
            """, name);
        // The program holds both maps now; their owners let go.
        ports.Dispose();
        sockets.Dispose();
        return program;
    }

    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void LookupsNeverRunADetachedProgramsReleasedState(string engine)
    {
        using var ns = new NetNamespace();
        var target = Udp(ns, "127.0.0.1:9000");
        var packet = Pkt("udp", "10.0.0.1:40000", $"127.0.0.1:{Port}");
        var programs = new System.Collections.Concurrent.ConcurrentQueue<SkLookupProgram>();   // to name a fault
        Exception? lookupError = null;
        int lookups = 0, redirected = 0;
        using var stop = new CancellationTokenSource();
        var reader = new Thread(() =>
        {
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    var r = ns.Lookup(packet);
                    bool ok = r.Outcome == LookupOutcome.Socket ? r.Socket == target : r.Outcome == LookupOutcome.None;
                    if (!ok)
                        throw new InvalidOperationException($"lookup {lookups}: {r.Outcome} {r.Socket} "
                            + string.Join("; ", programs.Select(p => p.LastFault?.Message).Where(m => m != null)));
                    if (r.Socket == target) redirected++;
                    lookups++;
                }
            }
            catch (Exception e)
            {
                lookupError = e;
            }
        });
        reader.Start();
        try
        {
            for (int i = 0; i < Cycles && lookupError == null; i++)
            {
                var first = Redirect(engine, "redir_a", target);
                programs.Enqueue(first);
                var link = ns.SkLookup.Attach(first);
                first.Dispose();        // the link holds the program
                Thread.Yield();
                if (i % 2 == 1)
                {
                    // BPF_LINK_UPDATE: the swap drops the old program's last reference.
                    var second = Redirect(engine, "redir_b", target);
                    programs.Enqueue(second);
                    link.Update(second);
                    second.Dispose();
                    Thread.Yield();
                }
                link.Detach();          // the link's reference was the last one
                Thread.Yield();
            }
        }
        finally
        {
            stop.Cancel();
            reader.Join();
        }
        Assert.That(lookupError, Is.Null, () => $"after {lookups} lookups: {lookupError}");
        Assert.That(programs.Sum(p => p.FaultCount), Is.Zero);
        Assert.That(programs.All(p => !p.IsLive), "every program is released once detached");
        TestContext.Out.WriteLine($"{lookups} lookups, {redirected} redirected by a program");
        Assert.That(lookups, Is.GreaterThan(0));
    }
}
