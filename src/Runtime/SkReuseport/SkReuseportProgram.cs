using BpfJit.Frontend;
using BpfJit.Frontend.Elf;
using BpfJit.Runtime.Maps;
using BpfJit.Runtime.SkLookup;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Runtime.SkReuseport;

/// <summary>
/// An SK_REUSEPORT program (<c>BPF_PROG_TYPE_SK_REUSEPORT</c>) made ready on one engine: its instructions after the
/// narrow-load rewrite (<see cref="SkReuseportLayout.NarrowLoadOffset"/>) and the engine's entry point. It runs on a
/// <see cref="SkReuseportContext"/>, attached to a <see cref="ReuseportGroup"/> (the SO_ATTACH_REUSEPORT_EBPF
/// equivalent) or test-run (<see cref="TestRun"/>).
/// <para>
/// Lifetime as <see cref="SkLookupProgram"/>'s: the loader holds one reference (dropped by <see cref="Dispose"/>),
/// every group it is attached to one more; the program's maps stay alive while any is held.
/// </para>
/// </summary>
public sealed class SkReuseportProgram : IDisposable
{
    static int s_nextId;
    readonly BpfEntry _entry;
    readonly BpfMap[] _maps;
    int _refs = 1;
    int _disposed;
    long _faults, _runs;
    BpfException? _lastFault;

    SkReuseportProgram(string name, Instruction[] code, string tag, string? btfName, IBpfEngine engine, HelperTable helpers, ProgramFacts? facts,
        AttachType expectedAttachType)
    {
        if (expectedAttachType is not (AttachType.SkReuseportSelect or AttachType.SkReuseportSelectOrMigrate))
            throw new BpfException($"program {name}: expected attach type {expectedAttachType} is not one of SK_REUSEPORT's (BPF_SK_REUSEPORT_SELECT, _SELECT_OR_MIGRATE)");
        Name = name;
        ExpectedAttachType = expectedAttachType;
        Id = Interlocked.Increment(ref s_nextId);
        Tag = tag;
        Symbol = btfName != null ? ProgramSymbol.OfBtf(tag, btfName) : ProgramSymbol.Of(tag, name);
        // The interpreter (and the JIT without facts) read the block with plain loads: the few narrow loads the kernel
        // answers from another offset are moved there. The rewrite changes only offsets, so facts still describe the
        // code, and the JIT's facts-driven ctx loads fold from the offset the verifier saw (SkReuseportLayout.Fold).
        Instructions = CtxLoadRewriter.Rewrite(code, (offset, size) => ProgramTypes.SkReuseport.SkReuseportType.Instance.NarrowLoadOffset(offset, Bytes(size)));
        Engine = engine;
        Helpers = helpers;
        Facts = facts;
        _entry = engine.Prepare(Instructions, helpers, facts, Symbol);
        _maps = BpfMap.HoldUsedBy(Instructions, name);
        if (_maps.Length == 0) GC.SuppressFinalize(this);
    }

    static int Bytes(MemSize size) => size switch { MemSize.B => 1, MemSize.H => 2, MemSize.W => 4, _ => 8 };

    /// <summary>
    /// Prepares <paramref name="code"/> (ld_imm64 map references already bound to handles) on <paramref name="engine"/>,
    /// unverified unless <paramref name="facts"/> come from the verifier. <paramref name="helpers"/> defaults to
    /// <see cref="SkReuseportHelpers.CreateTable"/>.
    /// </summary>
    public static SkReuseportProgram Load(string name, Instruction[] code, IBpfEngine engine, HelperTable? helpers = null, ProgramFacts? facts = null,
        AttachType expectedAttachType = AttachType.SkReuseportSelect)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(code);
        ArgumentNullException.ThrowIfNull(engine);
        return new SkReuseportProgram(name, code, ProgramTag.Compute(code), null, engine, helpers ?? SkReuseportHelpers.CreateTable(), facts, expectedAttachType);
    }

    /// <summary>Prepares a bound program (<see cref="ProgramBinder"/>) with the tag and symbol of the program as loaded.</summary>
    public static SkReuseportProgram Load(string name, BoundProgram bound, IBpfEngine engine, HelperTable? helpers = null, ProgramFacts? facts = null,
        AttachType expectedAttachType = AttachType.SkReuseportSelect)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(bound);
        ArgumentNullException.ThrowIfNull(engine);
        return new SkReuseportProgram(name, bound.Code, bound.Tag, bound.BtfName, engine, helpers ?? SkReuseportHelpers.CreateTable(), facts, expectedAttachType);
    }

    /// <summary>
    /// Loads an object's SK_REUSEPORT program as the kernel's BPF_PROG_LOAD does: verified by the installed verifier
    /// (<see cref="ProgramVerification"/>; refused while none is installed), bound to <paramref name="maps"/> (the
    /// object's maps in its order), then prepared on <paramref name="engine"/> with the facts the verifier proved.
    /// </summary>
    public static SkReuseportProgram Load(ProgramSpec program, IReadOnlyList<BpfMap> maps, IBpfEngine engine)
    {
        ArgumentNullException.ThrowIfNull(program);
        ArgumentNullException.ThrowIfNull(maps);
        if (program.Type != ProgramType.SkReuseport)
            throw new BpfException($"program {program.Name}: type {program.Type}, not SK_REUSEPORT (section {program.SectionName})");
        var helpers = SkReuseportHelpers.CreateTable();
        var facts = ProgramVerification.Verify(program, maps, helpers);
        if (facts != null && facts.ProgramType != ProgramType.SkReuseport)
            throw new BpfException($"program {program.Name}: the installed verifier checked it as {facts.ProgramType}, not SK_REUSEPORT");
        return Load(program.Name, ProgramBinder.Bind(program, maps), engine, helpers, facts, program.AttachType ?? AttachType.SkReuseportSelect);
    }

    /// <summary>
    /// The attach type it was loaded for: <c>BPF_SK_REUSEPORT_SELECT</c>, or <c>BPF_SK_REUSEPORT_SELECT_OR_MIGRATE</c>
    /// (section <c>sk_reuseport/migrate</c>), which also runs when a closing listener's connections migrate.
    /// </summary>
    public AttachType ExpectedAttachType { get; }

    /// <summary>The program's name.</summary>
    public string Name { get; }

    /// <summary>A process-unique program id.</summary>
    public int Id { get; }

    /// <summary>The program tag (<see cref="ProgramTag"/>).</summary>
    public string Tag { get; }

    /// <summary>The name the JIT gives the program's code, <c>bpf_prog_&lt;tag&gt;_&lt;name&gt;</c>.</summary>
    public string Symbol { get; }

    /// <summary>The instructions the engine runs.</summary>
    public Instruction[] Instructions { get; }

    /// <summary>The engine that prepared the program.</summary>
    public IBpfEngine Engine { get; }

    /// <summary>The helpers calls resolve against.</summary>
    public HelperTable Helpers { get; }

    /// <summary>What the verifier proved (null when loaded without facts).</summary>
    public ProgramFacts? Facts { get; }

    /// <summary>The maps the program uses; each stays alive while the program does.</summary>
    public IReadOnlyList<BpfMap> Maps => _maps;

    /// <summary>True while the loader or a group holds the program.</summary>
    public bool IsLive => Volatile.Read(ref _refs) > 0;

    /// <summary>How many times the program ran on a group's selection (not test runs).</summary>
    public long RunCount => Interlocked.Read(ref _runs);

    /// <summary>Runs that ended in a fault (each counted as SK_DROP for its packet).</summary>
    public long FaultCount => Interlocked.Read(ref _faults);

    /// <summary>The error of the latest faulting run, or null.</summary>
    public BpfException? LastFault => Volatile.Read(ref _lastFault);

    /// <summary>
    /// A program collected without <see cref="Dispose"/> (nothing holds it: no group, no loader) drops its maps'
    /// references, as the kernel does when a leaked program fd is closed at exit; as <c>SkLookupProgram</c>'s.
    /// </summary>
    ~SkReuseportProgram()
    {
        if (Interlocked.Exchange(ref _refs, 0) > 0)
            foreach (var map in _maps) map.Release();
    }

    /// <summary>Drops the loader's reference; groups it is attached to keep it alive.</summary>
#pragma warning disable CA1816 // the finalizer is suppressed by the last Release, which Dispose need not be
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Release();
    }
#pragma warning restore CA1816

    internal bool TryAddRef() => RefCount.TryIncrementNotZero(ref _refs);

    internal void Release()
    {
        if (Interlocked.Decrement(ref _refs) != 0) return;
        GC.SuppressFinalize(this);
        // As bpf_prog_put does: a selection that read the program before its last reference went may still be running it.
        BpfMap.PutUsedAfterGrace(_maps);
    }

    /// <summary>
    /// Runs once on the context block at <paramref name="ctx"/> and returns r0 truncated to 32 bits. A fault throws
    /// a <see cref="BpfException"/> naming this program and is counted in <see cref="FaultCount"/>.
    /// </summary>
    public uint Run(nint ctx)
    {
        MapEpoch.Enter();
        try
        {
            ObjectDisposedException.ThrowIf(!IsLive, this);
            return RunAttached(ctx);
        }
        finally
        {
            MapEpoch.Exit();
        }
    }

    /// <summary>
    /// A run for a group that read this program inside the read-side section the caller holds (as the kernel reads
    /// <c>reuse-&gt;prog</c> under RCU): no liveness check, since a detach racing that read releases the program's maps
    /// through <see cref="MapEpoch"/>, which keeps them until the section ends; the run completes on the state it saw.
    /// </summary>
    uint RunAttached(nint ctx)
    {
        try
        {
            return (uint)_entry((ulong)ctx, 0);
        }
        catch (Exception e) when (RunFaults.IsFault(e))
        {
            KernelHelpers.ReleaseSpinLockAfterFault();
            BpfException error = Checked.BpfFaultException.FromRunException(e)?.InProgram(Name) ?? (BpfException)e;
            Interlocked.Increment(ref _faults);
            Volatile.Write(ref _lastFault, error);
            throw error;
        }
    }

    [ThreadStatic] static SkReuseportContext? t_ctx;

    /// <summary>
    /// <c>bpf_run_sk_reuseport</c> for a group's selection, inside the read-side section in which the group read this
    /// program (<see cref="RunAttached"/>): fills the thread's context block for
    /// <paramref name="group"/>, the member the lookup found (<paramref name="sk"/>) and the packet, runs, and returns
    /// the program's answer: <see cref="ReuseportAction.Drop"/> unless it returned SK_PASS (a fault counts as
    /// SK_DROP), else the socket it selected, or <see cref="ReuseportAction.Hash"/> when it selected none.
    /// </summary>
    internal ReuseportDecision Select(ReuseportGroup group, Sock sk, in Packet packet, uint hash)
    {
        var ctx = t_ctx ??= new SkReuseportContext();
        ctx.Fill(group, sk, packet, hash);
        return RunAndDecide(ctx);
    }

    /// <summary>
    /// <c>bpf_run_sk_reuseport</c> with a migrating socket (<c>reuseport_migrate_sock</c>): the context holds the
    /// closing listener as <c>sk</c>, <paramref name="request"/> as <c>migrating_sk</c>, its hash, and the packet: the
    /// final ACK of the handshake when one arrived (<paramref name="ack"/>, <c>tcp_v4_rcv</c>), else an empty one (the
    /// listener's close). Same answers as <see cref="Select"/>.
    /// </summary>
    internal ReuseportDecision Migrate(ReuseportGroup group, Sock closing, in MigratingRequest request, Packet? ack = null)
    {
        var ctx = t_ctx ??= new SkReuseportContext();
        if (ack is { } packet) ctx.FillMigration(group, closing, request, packet);
        else ctx.FillMigration(group, closing, request);
        return RunAndDecide(ctx);
    }

    /// <summary>
    /// Runs the program on the filled context: a fault or any verdict but SK_PASS drops; SK_PASS with a socket selected
    /// chooses it, without one falls back to the hash.
    /// </summary>
    ReuseportDecision RunAndDecide(SkReuseportContext ctx)
    {
        Interlocked.Increment(ref _runs);
        uint ret;
        try
        {
            ret = RunAttached(ctx.Address);
        }
        catch (BpfException)
        {
            return ReuseportDecision.Drop;
        }
        if (ret != SkReuseportLayout.SkPass) return ReuseportDecision.Drop;
        var selected = Sock.FromHandle(ctx.SelectedSocket);
        return selected != null ? ReuseportDecision.Choose(selected) : ReuseportDecision.Hash;
    }

    /// <summary>
    /// A test run (the equivalent of BPF_PROG_TEST_RUN, which the kernel does not offer for this type): runs on a
    /// context filled from <paramref name="group"/>, <paramref name="sk"/>, <paramref name="packet"/> and
    /// <paramref name="hash"/> (null: the packet's own hash); returns r0 and the selected socket. Faults throw.
    /// </summary>
    public (uint Retval, Sock? Selected) TestRun(ReuseportGroup group, Sock sk, in Packet packet, uint? hash = null)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(sk);
        using var ctx = new SkReuseportContext();
        ctx.Fill(group, sk, packet, hash ?? packet.Hash());
        uint ret = Run(ctx.Address);
        MapEpoch.Enter();
        try { return (ret, Sock.FromHandle(ctx.SelectedSocket)); }
        finally { MapEpoch.Exit(); }
    }

    /// <inheritdoc />
    public override string ToString() => $"{Name} (id {Id}, {Engine.Name})";
}
