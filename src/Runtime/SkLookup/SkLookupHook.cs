using Errno = BpfJit.Runtime.Errno;
using BpfJit.Runtime.Sockets;

namespace BpfJit.Runtime.SkLookup;

/// <summary>The aggregated result of the run array (spec 5.2).</summary>
public readonly record struct HookVerdict(bool Pass, nint Selected, bool NoReuseport)
{
    /// <summary>True when no program was attached (the hook was skipped).</summary>
    public bool Skipped { get; init; }
}

/// <summary>
/// The SK_LOOKUP attach point of one network namespace: an ordered list of links (at most 64),
/// each running one program. Attach appends, detach removes, <see cref="SkLookupLink.Update"/>
/// swaps a link's program in place. Lookups read an immutable snapshot of the run array, so
/// changes are atomic with respect to every lookup.
/// </summary>
public sealed class SkLookupHook
{
    /// <summary>The kernel's limit on links per namespace.</summary>
    public const int MaxLinks = 64;

    readonly object _gate = new();
    bool _closed;   // the namespace is disposed: no more links
    SkLookupLink[] _links = [];
    SkLookupProgram[] _runArray = [];
    [ThreadStatic] static SkLookupContext? t_ctx;

    internal SkLookupHook(NetNamespace netns) => Namespace = netns;

    /// <summary>The namespace the hook belongs to.</summary>
    public NetNamespace Namespace { get; }

    /// <summary>The attached links in run order.</summary>
    public IReadOnlyList<SkLookupLink> Links => Volatile.Read(ref _links);

    /// <summary>BPF_PROG_QUERY: the program ids in run order (attach_flags are always 0).</summary>
    public IReadOnlyList<int> Query() => Volatile.Read(ref _runArray).Select(p => p.Id).ToArray();

    /// <summary>
    /// BPF_LINK_CREATE: appends a link running <paramref name="program"/>, which holds a reference on it;
    /// -E2BIG past <see cref="MaxLinks"/>; <see cref="ObjectDisposedException"/> when the program is gone
    /// (disposed and no link holds it) or the namespace is disposed.
    /// </summary>
    public SkLookupLink Attach(SkLookupProgram program)
    {
        ArgumentNullException.ThrowIfNull(program);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_closed, Namespace);
            if (_links.Length >= MaxLinks)
                throw new SocketErrorException(Errno.E2BIG, $"sk_lookup: at most {MaxLinks} links per namespace");
            if (!program.TryAddRef()) throw new ObjectDisposedException(program.ToString(), $"program {program.Name} is unloaded");
            var link = new SkLookupLink(this, program);
            _links = [.. _links, link];
            Publish();
            return link;
        }
    }

    // Link changes go through the hook's lock, so a detach, an update and the namespace's disposal of one
    // link are ordered; each drops the program reference it replaced after the run array no longer has it.

    internal void Detach(SkLookupLink link)
    {
        SkLookupProgram program;
        lock (_gate)
        {
            if (!link.Unhook()) return;
            program = link.Program;
            _links = _links.Where(l => l != link).ToArray();
            Publish();
        }
        program.Release();
    }

    internal void Update(SkLookupLink link, SkLookupProgram program)
    {
        SkLookupProgram old;
        lock (_gate)
        {
            if (!link.IsAttached) throw new SocketErrorException(Errno.ENOLINK, "link is detached");
            if (!program.TryAddRef()) throw new ObjectDisposedException(program.ToString(), $"program {program.Name} is unloaded");
            old = link.Swap(program);
            Publish();
        }
        old.Release();
    }

    /// <summary>The namespace's disposal: refuses further links and detaches every link.</summary>
    internal void Close()
    {
        SkLookupLink[] links;
        lock (_gate)
        {
            _closed = true;
            links = _links;
            foreach (var l in links) l.Unhook();
            _links = [];
            Publish();
        }
        foreach (var l in links) l.Program.Release();
    }

    void Publish() => Volatile.Write(ref _runArray, _links.Select(l => l.Program).ToArray());

    /// <summary>
    /// Runs every attached program on <paramref name="packet"/> and aggregates exactly as
    /// <c>BPF_PROG_SK_LOOKUP_RUN_ARRAY</c>: each program sees the last kept selection; a selection
    /// is kept only when its program returns SK_PASS; any kept selection wins over SK_DROP; the
    /// verdict is PASS when every program passed or a socket is selected. The caller must be
    /// inside a <see cref="Maps.MapEpoch"/> section while it uses <see cref="HookVerdict.Selected"/>.
    /// </summary>
    public HookVerdict Run(in Packet packet)
    {
        // The run array is read inside a read-side section: a program detached after the read keeps its maps until
        // the section ends.
        Maps.MapEpoch.Enter();
        try
        {
            return RunInSection(packet);
        }
        finally
        {
            Maps.MapEpoch.Exit();
        }
    }

    /// <summary><see cref="Run"/> for a caller already inside a read-side section (a lookup): no second section.</summary>
    internal HookVerdict RunInSection(in Packet packet)
    {
        var programs = Volatile.Read(ref _runArray);
        if (programs.Length == 0) return new HookVerdict(true, 0, false) { Skipped = true };
        var ctx = t_ctx ??= new SkLookupContext();
        ctx.Fill(packet);
        return Aggregate(programs, ctx, containFaults: true);
    }

    /// <summary>The run-array aggregation over an already filled context (also used by test runs).</summary>
    public static HookVerdict RunArray(IReadOnlyList<SkLookupProgram> programs, SkLookupContext ctx)
    {
        ArgumentNullException.ThrowIfNull(programs);
        ArgumentNullException.ThrowIfNull(ctx);
        return Aggregate(programs as SkLookupProgram[] ?? [.. programs], ctx, containFaults: false);
    }

    // The aggregation on an array: no interface call per program on the lookup path. A run that faults counts as
    // SK_DROP when containFaults is set (lookups through the hook: fail closed, docs/sk-lookup-runtime.md,
    // "Faults"); test runs rethrow the error. Each program's entry contains its own faults (RunFaults): a fault
    // returns RunFaults.Sentinel, whose low half is SK_DROP, so it is noticed on the drop path alone, and this loop
    // needs no exception handler, whose frame would keep the loop's state out of registers. Inlined into Run and
    // RunArray, and through them into their callers' loops.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    static HookVerdict Aggregate(SkLookupProgram[] programs, SkLookupContext ctx, bool containFaults)
    {
        nint selected = 0;
        bool noReuseport = false, allPass = true;
        for (int i = 0; i < programs.Length; i++)
        {
            ctx.SelectedSocket = selected;
            ctx.NoReuseport = noReuseport;
            ulong r0 = programs[i].RunContained(ctx.Address);
            uint ret = (uint)r0;
            if (ret == SkLookupLayout.SkPass && ctx.SelectedSocket != 0)
            {
                selected = ctx.SelectedSocket;
                noReuseport = ctx.NoReuseport;
            }
            else if (ret == SkLookupLayout.SkDrop)
            {
                if (r0 == RunFaults.Sentinel) AfterFault(programs[i], containFaults);
                allPass = false;
            }
        }
        ctx.SelectedSocket = selected;
        ctx.NoReuseport = noReuseport;
        return new HookVerdict(allPass || selected != 0, selected, noReuseport);
    }

    /// <summary>
    /// <paramref name="program"/> returned <see cref="RunFaults.Sentinel"/>: when that was a fault (and not the value
    /// itself), counts it; a test run (<paramref name="containFaults"/> false) rethrows the typed error, a lookup
    /// takes the run as SK_DROP and goes on with the next program.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    static void AfterFault(SkLookupProgram program, bool containFaults)
    {
        if (RunFaults.Take() is not { } fault) return;
        var error = program.Faulted(fault);
        if (!containFaults) throw error;
    }
}

/// <summary>A BPF link (type NETNS) from one program to a namespace's SK_LOOKUP hook.</summary>
public sealed class SkLookupLink
{
    static int s_nextId;
    SkLookupProgram _program;
    SkLookupHook? _hook;

    internal SkLookupLink(SkLookupHook hook, SkLookupProgram program)
    {
        _hook = hook;
        _program = program;
        Id = Interlocked.Increment(ref s_nextId);
        NetnsInode = hook.Namespace.Inode;
    }

    /// <summary>A process-unique link id.</summary>
    public int Id { get; }

    /// <summary>The program the link runs (still reported after detach, as the kernel does).</summary>
    public SkLookupProgram Program => Volatile.Read(ref _program);

    /// <summary>True until <see cref="Detach"/>.</summary>
    public bool IsAttached => Volatile.Read(ref _hook) != null;

    /// <summary><c>link_info.netns.netns_ino</c>: the namespace's inode, 0 once detached.</summary>
    public ulong NetnsInode { get; private set; }

    /// <summary>
    /// BPF_LINK_UPDATE: swaps the program atomically (the link takes a reference on the new one and drops the
    /// old one's); the link keeps its place in the run order. ENOLINK once detached,
    /// <see cref="ObjectDisposedException"/> when <paramref name="program"/> is gone.
    /// </summary>
    public void Update(SkLookupProgram program)
    {
        ArgumentNullException.ThrowIfNull(program);
        var hook = Volatile.Read(ref _hook) ?? throw new SocketErrorException(Errno.ENOLINK, "link is detached");
        hook.Update(this, program);
    }

    /// <summary>Detaches the link (again: nothing); later lookups no longer run its program, and the link's program reference is dropped.</summary>
    public void Detach() => Volatile.Read(ref _hook)?.Detach(this);

    // Under the hook's lock.
    internal bool Unhook()
    {
        if (_hook == null) return false;
        Volatile.Write(ref _hook, null);
        NetnsInode = 0;
        return true;
    }

    // Under the hook's lock.
    internal SkLookupProgram Swap(SkLookupProgram program)
    {
        var old = _program;
        Volatile.Write(ref _program, program);
        return old;
    }
}
