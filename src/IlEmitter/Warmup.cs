using System.Net;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;
using BpfJit.Verifier;

namespace BpfJit.IlEmitter;

/// <summary>
/// Moves the cold start of a process's first program off its path. The first program a process loads, verifies,
/// compiles and runs costs some 50 ms of CPU, nearly all of it the runtime's first use of BpfJit's code (type
/// loads, ReadyToRun fixups, static constructors, the first file read); the same pipeline again takes 2-3 ms
/// (docs/perf.md, "Cold start"). A host that calls <see cref="Start"/> when it starts, on a thread of its own,
/// pays that once before its first program arrives: the pipeline runs on a built-in SK_LOOKUP object (the
/// dispatcher of <c>tests/programs</c>: an LPM_TRIE, a hash, an array and a SOCKMAP, a helper call per kind) and
/// everything it made is released. The cost is moved, not removed: the warm-up takes the cold figure's CPU.
/// </summary>
public static class Warmup
{
    const string ObjectResource = "BpfJit.IlEmitter.warmup.o";

    /// <summary>Runs the warm-up on a dedicated background thread; the task completes when it is done.</summary>
    public static Task Start() => Task.Factory.StartNew(Run, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>
    /// Runs the warm-up on the calling thread: loads, verifies, JIT-compiles and runs the built-in program once,
    /// then disposes the program and its maps. Safe to call more than once and beside other work.
    /// </summary>
    public static void Run()
    {
        using var stream = typeof(Warmup).Assembly.GetManifestResourceStream(ObjectResource)
            ?? throw new InvalidOperationException($"the warm-up object {ObjectResource} is not in the assembly");
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        var spec = ObjectFile.Parse(bytes, "warmup.o");
        var maps = new List<BpfMap>();
        try
        {
            foreach (var m in spec.Maps)
            {
                // The dispatcher leaves its destinations map's sizes to userspace, as a host would fill them.
                var d = ObjectMaps.Definition(m);
                maps.Add(MapFactory.Create(d with { KeySize = d.KeySize == 0 ? 4 : d.KeySize, ValueSize = d.ValueSize == 0 ? 8 : d.ValueSize }));
            }
            ProgramSpec? program = null;
            foreach (var p in spec.Programs)
                if (p.IsSupported) { program = p; break; }
            if (program == null) throw new InvalidOperationException("the warm-up object has no supported program");
            var helpers = SkLookupHelpers.CreateTable();
            var facts = new SkLookupProgramVerifier().VerifyWithFacts(program, maps, helpers);
            var code = CtxLoadRewriter.Rewrite(ProgramBinder.Bind(program, maps).Code);
            using var loaded = SkLookupProgram.Load(program.Name, code, JitEngine.Instance, helpers, facts);
            using var ctx = new SkLookupContext();
            ctx.Fill(new Packet(SocketProtocol.Tcp, InetEndPoint.From(new IPEndPoint(new IPAddress([10, 0, 0, 1]), 50000)),
                InetEndPoint.From(new IPEndPoint(IPAddress.Loopback, 7007))));
            MapEpoch.Enter();
            try { SkLookupHook.RunArray([loaded], ctx); }
            finally { MapEpoch.Exit(); }
        }
        finally
        {
            foreach (var m in maps) m.Dispose();
        }
    }
}
