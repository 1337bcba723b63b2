using BpfJit.Runtime.Maps;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using BpfJit.Frontend;

namespace BpfJit.Runtime.SkLookup;

/// <summary>
/// An SK_LOOKUP program made ready on one engine: its instructions after the ctx-load rewrite
/// (<see cref="CtxLoadRewriter"/>) and the engine's entry point. The same object may be attached
/// through several links and test-run, and stored in a PROG_ARRAY as a tail-call target.
/// <para>
/// Lifetime (the kernel's <c>bpf_prog</c> refcount): the loader holds one reference, dropped by
/// <see cref="Dispose"/>; every link running the program holds one. While any is held the program's maps
/// (those its ld_imm64 constants name) stay alive, even when their owners dispose them. Once the last one is
/// dropped, <see cref="Run"/> and attaching throw <see cref="ObjectDisposedException"/>, and the maps' references go
/// after a grace period (<see cref="MapEpoch"/>): a lookup that read the run array before a detach finishes its run
/// on live maps, as a kernel run inside its RCU read section does.
/// </para>
/// </summary>
public sealed class SkLookupProgram : ITailCallTarget, IDisposable
{
    static int s_nextId;
    readonly BpfEntry _entry;
    readonly BpfMap[] _maps = [];   // empty until the constructor holds them: a constructor that threw leaves the finalizer nothing to release
    int _refs = 1;          // the loader's reference plus one per link
    int _disposed;
    // Run statistics per processor (count, then time in Stopwatch ticks), one cache line each: every run is
    // counted without making the threads that run a program share (and bounce) one line. Processor c's
    // counters are at index (c + 1) * Stride:
    // the first line of the array holds its header (the length every run's bounds check reads) and is
    // never written, and a padding line after the last counter keeps the next heap object off it.
    const int CounterStride = 8;
    static readonly int s_counterMask = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Environment.ProcessorCount) - 1;
    readonly long[] _runs = new long[(s_counterMask + 3) * CounterStride];

    SkLookupProgram(string name, Instruction[] code, string tag, string? btfName, IBpfEngine engine, HelperTable helpers, ProgramFacts? facts)
    {
        Name = name;
        Id = Interlocked.Increment(ref s_nextId);
        Tag = tag;
        Symbol = btfName != null ? ProgramSymbol.OfBtf(tag, btfName) : ProgramSymbol.Of(tag, name);
        Instructions = CtxLoadRewriter.Rewrite(code);
        Engine = engine;
        Helpers = helpers;
        Facts = facts;
        // An entry that contains its faults (RunFaults): the hook's run array has no exception handler of its own.
        _entry = engine.PrepareContained(Instructions, helpers, facts, Symbol) ?? RunFaults.Wrap(engine.Prepare(Instructions, helpers, facts, Symbol));
        // The program's used_maps: each holds a reference until the program is gone.
        _maps = BpfMap.HoldUsedBy(Instructions, name);
        if (_maps.Length == 0) GC.SuppressFinalize(this);
    }

    /// <summary>
    /// A program collected without <see cref="Dispose"/> drops its maps' references, as the kernel does when a
    /// process exits with the program fd open: nothing can run it any more (links, PROG_ARRAY slots and runs in
    /// progress all hold the object).
    /// </summary>
    ~SkLookupProgram()
    {
        if (Interlocked.Exchange(ref _refs, 0) > 0)
            foreach (var map in _maps) map.Release();
    }

    /// <summary>The maps the program uses (found from its ld_imm64 constants); each stays alive while the program does.</summary>
    public IReadOnlyList<BpfMap> Maps => _maps;

    /// <summary>True once the loader's reference was dropped by <see cref="Dispose"/> (links may still run the program).</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>True while anything holds the program (the loader or a link): it can run and its maps are alive.</summary>
    public bool IsLive => Volatile.Read(ref _refs) > 0;

    /// <summary>
    /// Drops the loader's reference (closing the program fd): links attached keep the program and its maps
    /// alive; when none is, the maps' references are dropped now.
    /// </summary>
#pragma warning disable CA1816 // the finalizer is suppressed by the last Release, which Dispose need not be
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Release();
    }
#pragma warning restore CA1816

    /// <summary>A link takes a reference (bpf_prog_inc_not_zero); false once the program is gone.</summary>
    internal bool TryAddRef() => RefCount.TryIncrementNotZero(ref _refs);

    /// <summary>
    /// Drops a reference (bpf_prog_put); the last one drops the maps' references after a grace period
    /// (<see cref="MapEpoch.Retire(Action)"/>), as the kernel puts a program's used_maps from an RCU callback.
    /// </summary>
    internal void Release()
    {
        if (Interlocked.Decrement(ref _refs) != 0) return;
        GC.SuppressFinalize(this);
        // A lookup that read the run array (or a PROG_ARRAY slot) before the last reference went may still be running
        // this program inside its read-side section (a checking engine refuses a map whose last reference is gone).
        BpfMap.PutUsedAfterGrace(_maps);
    }

    /// <summary>
    /// Prepares <paramref name="code"/> (ld_imm64 map references already bound to handles) on
    /// <paramref name="engine"/>. <paramref name="helpers"/> defaults to <see cref="SkLookupHelpers.CreateTable"/>.
    /// </summary>
    public static SkLookupProgram Load(string name, Instruction[] code, IBpfEngine engine, HelperTable? helpers = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(code);
        ArgumentNullException.ThrowIfNull(engine);
        return new SkLookupProgram(name, code, ProgramTag.Compute(code), null, engine, helpers ?? SkLookupHelpers.CreateTable(), null);
    }

    /// <summary>
    /// Prepares a verified program with the <paramref name="facts"/> its verifier proved (from
    /// <see cref="ProgramVerification.Verify"/>), so the engine can specialise it; null facts: as
    /// <see cref="Load(string, Instruction[], IBpfEngine, HelperTable?)"/>. The <see cref="Tag"/> is of
    /// <paramref name="code"/> as given: for a program whose map references are bound, pass its
    /// <see cref="Maps.BoundProgram"/> instead (<see cref="Load(string, Maps.BoundProgram, IBpfEngine, HelperTable?, ProgramFacts?)"/>).
    /// </summary>
    public static SkLookupProgram Load(string name, Instruction[] code, IBpfEngine engine, HelperTable? helpers, ProgramFacts? facts)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(code);
        ArgumentNullException.ThrowIfNull(engine);
        return new SkLookupProgram(name, code, ProgramTag.Compute(code), null, engine, helpers ?? SkLookupHelpers.CreateTable(), facts);
    }

    /// <summary>
    /// Prepares a bound program (<see cref="Maps.ProgramBinder.Bind(Frontend.Elf.ProgramSpec, IReadOnlyList{Maps.BpfMap})"/>)
    /// as <see cref="Load(string, Instruction[], IBpfEngine, HelperTable?, ProgramFacts?)"/> does, with the tag
    /// of the program as it was loaded, before its map references held live handles, and the symbol the kernel
    /// would give it (after its BTF function name when it has BTF func info).
    /// </summary>
    public static SkLookupProgram Load(string name, Maps.BoundProgram bound, IBpfEngine engine, HelperTable? helpers, ProgramFacts? facts)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(bound);
        ArgumentNullException.ThrowIfNull(engine);
        return new SkLookupProgram(name, bound.Code, bound.Tag, bound.BtfName, engine, helpers ?? SkLookupHelpers.CreateTable(), facts);
    }

    /// <summary>
    /// The program tag (<see cref="ProgramTag"/>): 16 hex digits the kernel computes at load and <c>bpftool prog</c>
    /// and <c>bpfjit inspect</c> show.
    /// </summary>
    public string Tag { get; }

    /// <summary>
    /// The name of the program's code as the kernel names a JIT image, <c>bpf_prog_&lt;tag&gt;_&lt;name&gt;</c>
    /// (<see cref="ProgramSymbol"/>; with BTF func info the function's full name): the JIT names its DynamicMethod so, and perf's map and profilers show it.
    /// </summary>
    public string Symbol { get; }

    /// <summary>What the verifier proved about the program (null when it was not verified with facts).</summary>
    public ProgramFacts? Facts { get; }

    /// <summary>The program's name (its ELF symbol or the scenario's key).</summary>
    public string Name { get; }

    /// <summary>A process-unique program id (what BPF_PROG_QUERY reports).</summary>
    public int Id { get; }

    /// <summary>The instructions the engine runs.</summary>
    public Instruction[] Instructions { get; }

    /// <summary>The engine that prepared the program.</summary>
    public IBpfEngine Engine { get; }

    /// <summary>The helpers calls resolve against.</summary>
    public HelperTable Helpers { get; }

    /// <summary>
    /// <c>run_cnt</c>: how many times the program ran (hook runs and test runs) while <see cref="BpfStats"/> was
    /// enabled; 0 when statistics were never on, as in the kernel.
    /// </summary>
    public long RunCount => Sum(0);

    /// <summary><c>run_time_ns</c>: the total time of the runs counted in <see cref="RunCount"/>.</summary>
    public TimeSpan RunTime => Stopwatch.GetElapsedTime(0, Sum(1));

    long Sum(int field)
    {
        long sum = 0;
        for (int i = CounterStride; i < _runs.Length - CounterStride; i += CounterStride) sum += Interlocked.Read(ref _runs[i + field]);
        return sum;
    }

    /// <summary>
    /// How many runs of this program ended in a fault or another runtime error (a <see cref="Checked.BpfFaultException"/>
    /// or <see cref="BpfRuntimeException"/>): counted always, unlike <see cref="RunCount"/>, since a fault is an event
    /// an operator must see. Through the hook each one counted as SK_DROP for its lookup.
    /// </summary>
    public long FaultCount => Interlocked.Read(ref _faults);

    /// <summary>The error of the latest faulting run, or null.</summary>
    public BpfException? LastFault => Volatile.Read(ref _lastFault);

    long _faults;
    BpfException? _lastFault;

    /// <summary>
    /// Runs once on the context block at <paramref name="ctx"/> and returns r0 truncated to 32 bits, as the kernel's run
    /// array does. A run that faults throws a <see cref="Checked.BpfFaultException"/> naming this program (a
    /// <see cref="NullReferenceException"/> or <see cref="DivideByZeroException"/> from unguarded code is turned into
    /// one), or a <see cref="BpfRuntimeException"/>; either is counted in <see cref="FaultCount"/>, and a bpf_spin_lock
    /// the run held is released.
    /// </summary>
    public uint Run(nint ctx)
    {
        // Inside a read-side section, with the program seen alive in it: maps released after this check are
        // retired through the epoch and stay readable until the run ends.
        MapEpoch.Enter();
        try
        {
            ObjectDisposedException.ThrowIf(!IsLive, this);
            ulong r0 = RunContained(ctx);
            if (r0 == RunFaults.Sentinel && RunFaults.Take() is { } fault) throw Faulted(fault);
            return (uint)r0;
        }
        finally
        {
            MapEpoch.Exit();
        }
    }

    /// <summary>
    /// A run through the entry, which contains its faults: r0 as the program returned it, or <see cref="RunFaults.Sentinel"/>
    /// after a fault, whose error <see cref="RunFaults.Take"/> then hands to <see cref="Faulted"/>.
    /// </summary>
    internal ulong RunContained(nint ctx)
    {
        if (!BpfStats.Enabled) return _entry((ulong)ctx, 0);
        return RunCounted(ctx);
    }

    /// <summary>Cleans up after a faulting run (a held bpf_spin_lock), counts and names it; returns the typed error.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal BpfException Faulted(Exception e)
    {
        KernelHelpers.ReleaseSpinLockAfterFault();
        BpfException error = Checked.BpfFaultException.FromRunException(e)?.InProgram(Name) ?? (BpfException)e;
        Interlocked.Increment(ref _faults);
        Volatile.Write(ref _lastFault, error);
        return error;
    }

    // With statistics on: the run and its time go to the current processor's counters (exact under concurrency).
    [MethodImpl(MethodImplOptions.NoInlining)]
    ulong RunCounted(nint ctx)
    {
        long start = Stopwatch.GetTimestamp();
        ulong ret = _entry((ulong)ctx, 0);
        int slot = ((Thread.GetCurrentProcessorId() & s_counterMask) + 1) * CounterStride;
        Interlocked.Increment(ref _runs[slot]);
        Interlocked.Add(ref _runs[slot + 1], Stopwatch.GetTimestamp() - start);
        return ret;
    }

    /// <summary>
    /// A tail call into this program (<c>bpf_tail_call</c> through a PROG_ARRAY holding it): the caller's context and
    /// run, so the statistics and fault handling stay with the program that the hook ran, as in the kernel.
    /// </summary>
    ulong ITailCallTarget.Run(ulong ctx) => _entry(ctx, 0);

    /// <inheritdoc />
    public override string ToString() => $"{Name} (id {Id}, {Engine.Name})";
}
