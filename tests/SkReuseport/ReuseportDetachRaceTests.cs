using BpfJit.Frontend;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.SkReuseport;
using BpfJit.Runtime.Sockets;
using BpfJit.Tests.Support;

namespace BpfJit.Tests.SkReuseport;

/// <summary>
/// A group's program under a concurrent SO_DETACH_REUSEPORT_BPF: the kernel's lookup reads the program under RCU and
/// the detach frees it only after a grace period, so a selection that already saw the program runs it to the end. Here
/// lookups run on one thread while another attaches and detaches programs whose loader reference is already gone (the
/// group's is the last): no lookup may fail or see a released program or map; each one is the program's selection or,
/// with no program, the hash's pick.
/// </summary>
[TestFixture]
public class ReuseportDetachRaceTests
{
    [TestCaseSource(typeof(Engines), nameof(Engines.Names))]
    public void LookupsNeverRunADetachedProgramsReleasedState(string engine)
    {
        using var ns = new NetNamespace();
        var local = new InetEndPoint(SocketFamily.Inet, InetAddress.FromIp4Raw(0x0100007f), 9000);
        var members = Enumerable.Range(0, 2).Select(_ =>
        {
            var s = ns.Sockets.Create(SocketFamily.Inet, SocketProtocol.Udp);
            s.ReusePort = true;
            s.Bind(local);
            return s;
        }).ToArray();
        var group = members[0].ReuseportGroup!;
        var packet = new Packet(SocketProtocol.Udp, local with { Port = 40000 }, local) { FlowHash = 0 };
        // The hash 0 picks member 0.
        var byHash = group.Select(members[0], packet, out _);
        Assert.That(byHash, Is.SameAs(members[0]));
        const int Cycles = 1500;
        var programs = new System.Collections.Concurrent.ConcurrentQueue<SkReuseportProgram>();   // to name a fault
        Exception? lookupError = null;
        int lookups = 0, selected = 0;
        using var stop = new CancellationTokenSource();
        var reader = new Thread(() =>
        {
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    var r = ns.Lookup(packet);
                    if (r.Outcome != LookupOutcome.Socket || (r.Socket != members[0] && r.Socket != members[1]))
                        throw new InvalidOperationException($"lookup {lookups}: {r.Outcome} {r.Socket} {string.Join(";", programs.Select(p => p.LastFault?.Message).Where(m => m != null))}");
                    if (r.Socket == members[1]) selected++;
                    lookups++;
                }
            }
            catch (Exception e)
            {
                lookupError = e;
            }
        });
        reader.Start();
        // Every program selects member 1 through the shared REUSEPORT_SOCKARRAY, at the key it reads from its own ARRAY.
        using var sockets = MapFactory.Create(BpfJit.Frontend.Elf.MapType.ReuseportSockArray, 4, 8, 2, 0, "rp");
        Assert.That(sockets.Update(BitConverter.GetBytes(1u), BitConverter.GetBytes(members[1].Cookie)), Is.Zero);
        try
        {
            for (int i = 0; i < Cycles && lookupError == null; i++)
            {
                var keys = MapFactory.Create(BpfJit.Frontend.Elf.MapType.Array, 4, 4, 1, 0, "key");
                Assert.That(keys.Update(BitConverter.GetBytes(0u), BitConverter.GetBytes(1u)), Is.Zero);
                var program = SkReuseportProgram.Load("select_1", Assembler.Assemble($"""
                    mov %r6, %r1
                    stw [%r10-4], 0
                    lddw %r1, 0x{keys.Handle:x}
                    mov %r2, %r10
                    add %r2, -4
                    call 1
                    jeq %r0, 0, out
                    ldxw %r1, [%r0+0]
                    stxw [%r10-8], %r1
                    mov %r1, %r6
                    lddw %r2, 0x{sockets.Handle:x}
                    mov %r3, %r10
                    add %r3, -8
                    mov %r4, 0
                    call 82
                    out:
                    mov %r0, 1
                    exit
                    """), Engines.Get(engine));
                keys.Dispose();         // the program holds its ARRAY
                programs.Enqueue(program);
                group.Attach(program);
                program.Dispose();      // the group holds the program: detaching drops its last reference, and the ARRAY's
                Thread.Yield();
                group.Detach();
            }
        }
        finally
        {
            stop.Cancel();
            reader.Join();
        }
        Assert.That(lookupError, Is.Null, () => $"after {lookups} lookups: {lookupError}");
        TestContext.Out.WriteLine($"{lookups} lookups, {selected} selected by a program");
        Assert.That(lookups, Is.GreaterThan(0));
    }
}
