namespace BpfJit.Frontend.Elf;

/// <summary>Kernel program types (enum bpf_prog_type), with the kernel's numbering.</summary>
public enum ProgramType : uint
{
    /// <summary>Not known: the section name was not recognised. Set the type by hand to use the program.</summary>
    Unspec = 0,
    /// <summary>BPF_PROG_TYPE_SOCKET_FILTER.</summary>
    SocketFilter = 1,
    /// <summary>BPF_PROG_TYPE_KPROBE.</summary>
    Kprobe = 2,
    /// <summary>BPF_PROG_TYPE_SCHED_CLS.</summary>
    SchedCls = 3,
    /// <summary>BPF_PROG_TYPE_SCHED_ACT.</summary>
    SchedAct = 4,
    /// <summary>BPF_PROG_TYPE_TRACEPOINT.</summary>
    Tracepoint = 5,
    /// <summary>BPF_PROG_TYPE_XDP.</summary>
    Xdp = 6,
    /// <summary>BPF_PROG_TYPE_PERF_EVENT.</summary>
    PerfEvent = 7,
    /// <summary>BPF_PROG_TYPE_CGROUP_SKB.</summary>
    CgroupSkb = 8,
    /// <summary>BPF_PROG_TYPE_CGROUP_SOCK.</summary>
    CgroupSock = 9,
    /// <summary>BPF_PROG_TYPE_LWT_IN.</summary>
    LwtIn = 10,
    /// <summary>BPF_PROG_TYPE_LWT_OUT.</summary>
    LwtOut = 11,
    /// <summary>BPF_PROG_TYPE_LWT_XMIT.</summary>
    LwtXmit = 12,
    /// <summary>BPF_PROG_TYPE_SOCK_OPS.</summary>
    SockOps = 13,
    /// <summary>BPF_PROG_TYPE_SK_SKB.</summary>
    SkSkb = 14,
    /// <summary>BPF_PROG_TYPE_CGROUP_DEVICE.</summary>
    CgroupDevice = 15,
    /// <summary>BPF_PROG_TYPE_SK_MSG.</summary>
    SkMsg = 16,
    /// <summary>BPF_PROG_TYPE_RAW_TRACEPOINT.</summary>
    RawTracepoint = 17,
    /// <summary>BPF_PROG_TYPE_CGROUP_SOCK_ADDR.</summary>
    CgroupSockAddr = 18,
    /// <summary>BPF_PROG_TYPE_LWT_SEG6LOCAL.</summary>
    LwtSeg6Local = 19,
    /// <summary>BPF_PROG_TYPE_LIRC_MODE2.</summary>
    LircMode2 = 20,
    /// <summary>BPF_PROG_TYPE_SK_REUSEPORT.</summary>
    SkReuseport = 21,
    /// <summary>BPF_PROG_TYPE_FLOW_DISSECTOR.</summary>
    FlowDissector = 22,
    /// <summary>BPF_PROG_TYPE_CGROUP_SYSCTL.</summary>
    CgroupSysctl = 23,
    /// <summary>BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE.</summary>
    RawTracepointWritable = 24,
    /// <summary>BPF_PROG_TYPE_CGROUP_SOCKOPT.</summary>
    CgroupSockopt = 25,
    /// <summary>BPF_PROG_TYPE_TRACING.</summary>
    Tracing = 26,
    /// <summary>BPF_PROG_TYPE_STRUCT_OPS.</summary>
    StructOps = 27,
    /// <summary>BPF_PROG_TYPE_EXT.</summary>
    Ext = 28,
    /// <summary>BPF_PROG_TYPE_LSM.</summary>
    Lsm = 29,
    /// <summary>BPF_PROG_TYPE_SK_LOOKUP: BpfJit runs it (with SK_REUSEPORT).</summary>
    SkLookup = 30,
    /// <summary>BPF_PROG_TYPE_SYSCALL.</summary>
    Syscall = 31,
    /// <summary>BPF_PROG_TYPE_NETFILTER.</summary>
    Netfilter = 32,
}

/// <summary>Kernel attach types (enum bpf_attach_type), with the kernel's numbering.</summary>
public enum AttachType : uint
{
    /// <summary>BPF_CGROUP_INET_INGRESS.</summary>
    CgroupInetIngress = 0,
    /// <summary>BPF_CGROUP_INET_EGRESS.</summary>
    CgroupInetEgress = 1,
    /// <summary>BPF_CGROUP_INET_SOCK_CREATE.</summary>
    CgroupInetSockCreate = 2,
    /// <summary>BPF_CGROUP_SOCK_OPS.</summary>
    CgroupSockOps = 3,
    /// <summary>BPF_SK_SKB_STREAM_PARSER.</summary>
    SkSkbStreamParser = 4,
    /// <summary>BPF_SK_SKB_STREAM_VERDICT.</summary>
    SkSkbStreamVerdict = 5,
    /// <summary>BPF_CGROUP_DEVICE.</summary>
    CgroupDevice = 6,
    /// <summary>BPF_SK_MSG_VERDICT.</summary>
    SkMsgVerdict = 7,
    /// <summary>BPF_CGROUP_INET4_BIND.</summary>
    CgroupInet4Bind = 8,
    /// <summary>BPF_CGROUP_INET6_BIND.</summary>
    CgroupInet6Bind = 9,
    /// <summary>BPF_CGROUP_INET4_CONNECT.</summary>
    CgroupInet4Connect = 10,
    /// <summary>BPF_CGROUP_INET6_CONNECT.</summary>
    CgroupInet6Connect = 11,
    /// <summary>BPF_CGROUP_INET4_POST_BIND.</summary>
    CgroupInet4PostBind = 12,
    /// <summary>BPF_CGROUP_INET6_POST_BIND.</summary>
    CgroupInet6PostBind = 13,
    /// <summary>BPF_CGROUP_UDP4_SENDMSG.</summary>
    CgroupUdp4Sendmsg = 14,
    /// <summary>BPF_CGROUP_UDP6_SENDMSG.</summary>
    CgroupUdp6Sendmsg = 15,
    /// <summary>BPF_LIRC_MODE2.</summary>
    LircMode2 = 16,
    /// <summary>BPF_FLOW_DISSECTOR.</summary>
    FlowDissector = 17,
    /// <summary>BPF_CGROUP_SYSCTL.</summary>
    CgroupSysctl = 18,
    /// <summary>BPF_CGROUP_UDP4_RECVMSG.</summary>
    CgroupUdp4Recvmsg = 19,
    /// <summary>BPF_CGROUP_UDP6_RECVMSG.</summary>
    CgroupUdp6Recvmsg = 20,
    /// <summary>BPF_CGROUP_GETSOCKOPT.</summary>
    CgroupGetsockopt = 21,
    /// <summary>BPF_CGROUP_SETSOCKOPT.</summary>
    CgroupSetsockopt = 22,
    /// <summary>BPF_TRACE_RAW_TP.</summary>
    TraceRawTp = 23,
    /// <summary>BPF_TRACE_FENTRY.</summary>
    TraceFentry = 24,
    /// <summary>BPF_TRACE_FEXIT.</summary>
    TraceFexit = 25,
    /// <summary>BPF_MODIFY_RETURN.</summary>
    ModifyReturn = 26,
    /// <summary>BPF_LSM_MAC.</summary>
    LsmMac = 27,
    /// <summary>BPF_TRACE_ITER.</summary>
    TraceIter = 28,
    /// <summary>BPF_CGROUP_INET4_GETPEERNAME.</summary>
    CgroupInet4Getpeername = 29,
    /// <summary>BPF_CGROUP_INET6_GETPEERNAME.</summary>
    CgroupInet6Getpeername = 30,
    /// <summary>BPF_CGROUP_INET4_GETSOCKNAME.</summary>
    CgroupInet4Getsockname = 31,
    /// <summary>BPF_CGROUP_INET6_GETSOCKNAME.</summary>
    CgroupInet6Getsockname = 32,
    /// <summary>BPF_XDP_DEVMAP.</summary>
    XdpDevmap = 33,
    /// <summary>BPF_CGROUP_INET_SOCK_RELEASE.</summary>
    CgroupInetSockRelease = 34,
    /// <summary>BPF_XDP_CPUMAP.</summary>
    XdpCpumap = 35,
    /// <summary>BPF_SK_LOOKUP: the attach type of SK_LOOKUP programs.</summary>
    SkLookup = 36,
    /// <summary>BPF_XDP.</summary>
    Xdp = 37,
    /// <summary>BPF_SK_SKB_VERDICT.</summary>
    SkSkbVerdict = 38,
    /// <summary>BPF_SK_REUSEPORT_SELECT.</summary>
    SkReuseportSelect = 39,
    /// <summary>BPF_SK_REUSEPORT_SELECT_OR_MIGRATE.</summary>
    SkReuseportSelectOrMigrate = 40,
    /// <summary>BPF_PERF_EVENT.</summary>
    PerfEvent = 41,
    /// <summary>BPF_TRACE_KPROBE_MULTI.</summary>
    TraceKprobeMulti = 42,
    /// <summary>BPF_LSM_CGROUP.</summary>
    LsmCgroup = 43,
    /// <summary>BPF_STRUCT_OPS.</summary>
    StructOps = 44,
    /// <summary>BPF_NETFILTER.</summary>
    Netfilter = 45,
    /// <summary>BPF_TCX_INGRESS.</summary>
    TcxIngress = 46,
    /// <summary>BPF_TCX_EGRESS.</summary>
    TcxEgress = 47,
    /// <summary>BPF_TRACE_UPROBE_MULTI.</summary>
    TraceUprobeMulti = 48,
}

/// <summary>
/// Maps ELF section names to program and attach types with libbpf's rules (section_defs in
/// libbpf.c), plus cilium/ebpf's <c>sk_lookup/</c> prefix. Only SK_LOOKUP is supported by BpfJit; the
/// other kernel types are still recognised so they are reported by name and never misread.
/// </summary>
public static class SectionNames
{
    /// <summary>One rule: a name that matches exactly, or a prefix ending in '/' that needs something after it.</summary>
    readonly record struct Rule(string Pattern, ProgramType Type, AttachType? Attach, bool Prefix);

    static Rule Exact(string name, ProgramType type, AttachType? attach = null) => new(name, type, attach, false);
    static Rule Prefix(string name, ProgramType type, AttachType? attach = null) => new(name, type, attach, true);

    // Order matters only where one rule's pattern is a prefix of another's; exact rules are tried first.
    static readonly Rule[] s_rules =
    [
        Exact("sk_lookup", ProgramType.SkLookup, AttachType.SkLookup),
        Prefix("sk_lookup/", ProgramType.SkLookup, AttachType.SkLookup),
        Exact("socket", ProgramType.SocketFilter),
        Prefix("socket/", ProgramType.SocketFilter),
        Exact("sk_reuseport", ProgramType.SkReuseport, AttachType.SkReuseportSelect),
        Exact("sk_reuseport/migrate", ProgramType.SkReuseport, AttachType.SkReuseportSelectOrMigrate),
        Prefix("kprobe/", ProgramType.Kprobe), Prefix("kretprobe/", ProgramType.Kprobe),
        Prefix("uprobe/", ProgramType.Kprobe), Prefix("uretprobe/", ProgramType.Kprobe),
        Exact("kprobe", ProgramType.Kprobe), Exact("uprobe", ProgramType.Kprobe),
        Prefix("kprobe.multi/", ProgramType.Kprobe, AttachType.TraceKprobeMulti),
        Prefix("kretprobe.multi/", ProgramType.Kprobe, AttachType.TraceKprobeMulti),
        Prefix("usdt/", ProgramType.Kprobe), Exact("usdt", ProgramType.Kprobe),
        Exact("tc", ProgramType.SchedCls), Exact("classifier", ProgramType.SchedCls), Prefix("classifier/", ProgramType.SchedCls),
        Exact("tcx/ingress", ProgramType.SchedCls, AttachType.TcxIngress), Exact("tcx/egress", ProgramType.SchedCls, AttachType.TcxEgress),
        Prefix("tc/", ProgramType.SchedCls),
        Exact("action", ProgramType.SchedAct), Prefix("action/", ProgramType.SchedAct),
        Prefix("tracepoint/", ProgramType.Tracepoint), Prefix("tp/", ProgramType.Tracepoint),
        Prefix("raw_tracepoint/", ProgramType.RawTracepoint), Prefix("raw_tp/", ProgramType.RawTracepoint),
        Prefix("raw_tracepoint.w/", ProgramType.RawTracepointWritable), Prefix("raw_tp.w/", ProgramType.RawTracepointWritable),
        Prefix("tp_btf/", ProgramType.Tracing, AttachType.TraceRawTp),
        Prefix("fentry/", ProgramType.Tracing, AttachType.TraceFentry), Prefix("fentry.s/", ProgramType.Tracing, AttachType.TraceFentry),
        Prefix("fexit/", ProgramType.Tracing, AttachType.TraceFexit), Prefix("fexit.s/", ProgramType.Tracing, AttachType.TraceFexit),
        Prefix("fmod_ret/", ProgramType.Tracing, AttachType.ModifyReturn), Prefix("fmod_ret.s/", ProgramType.Tracing, AttachType.ModifyReturn),
        Prefix("iter/", ProgramType.Tracing, AttachType.TraceIter), Prefix("iter.s/", ProgramType.Tracing, AttachType.TraceIter),
        Prefix("freplace/", ProgramType.Ext),
        Prefix("lsm/", ProgramType.Lsm, AttachType.LsmMac), Prefix("lsm.s/", ProgramType.Lsm, AttachType.LsmMac),
        Prefix("lsm_cgroup/", ProgramType.Lsm, AttachType.LsmCgroup),
        Exact("xdp", ProgramType.Xdp, AttachType.Xdp), Exact("xdp.frags", ProgramType.Xdp, AttachType.Xdp),
        Prefix("xdp/", ProgramType.Xdp, AttachType.Xdp), Prefix("xdp.frags/", ProgramType.Xdp, AttachType.Xdp),
        Exact("perf_event", ProgramType.PerfEvent),
        Exact("lwt_in", ProgramType.LwtIn), Exact("lwt_out", ProgramType.LwtOut), Exact("lwt_xmit", ProgramType.LwtXmit),
        Exact("lwt_seg6local", ProgramType.LwtSeg6Local),
        Exact("sockops", ProgramType.SockOps, AttachType.CgroupSockOps),
        Exact("sk_skb/stream_parser", ProgramType.SkSkb, AttachType.SkSkbStreamParser),
        Exact("sk_skb/stream_verdict", ProgramType.SkSkb, AttachType.SkSkbStreamVerdict),
        Exact("sk_skb/verdict", ProgramType.SkSkb, AttachType.SkSkbVerdict),
        Exact("sk_skb", ProgramType.SkSkb), Prefix("sk_skb/", ProgramType.SkSkb),
        Exact("sk_msg", ProgramType.SkMsg, AttachType.SkMsgVerdict),
        Exact("lirc_mode2", ProgramType.LircMode2, AttachType.LircMode2),
        Exact("flow_dissector", ProgramType.FlowDissector, AttachType.FlowDissector),
        Exact("cgroup_skb/ingress", ProgramType.CgroupSkb, AttachType.CgroupInetIngress),
        Exact("cgroup_skb/egress", ProgramType.CgroupSkb, AttachType.CgroupInetEgress),
        Exact("cgroup/skb", ProgramType.CgroupSkb), Prefix("cgroup_skb/", ProgramType.CgroupSkb),
        Exact("cgroup/sock_create", ProgramType.CgroupSock, AttachType.CgroupInetSockCreate),
        Exact("cgroup/sock_release", ProgramType.CgroupSock, AttachType.CgroupInetSockRelease),
        Exact("cgroup/sock", ProgramType.CgroupSock, AttachType.CgroupInetSockCreate),
        Exact("cgroup/post_bind4", ProgramType.CgroupSock, AttachType.CgroupInet4PostBind),
        Exact("cgroup/post_bind6", ProgramType.CgroupSock, AttachType.CgroupInet6PostBind),
        Exact("cgroup/dev", ProgramType.CgroupDevice, AttachType.CgroupDevice),
        Exact("cgroup/bind4", ProgramType.CgroupSockAddr, AttachType.CgroupInet4Bind),
        Exact("cgroup/bind6", ProgramType.CgroupSockAddr, AttachType.CgroupInet6Bind),
        Exact("cgroup/connect4", ProgramType.CgroupSockAddr, AttachType.CgroupInet4Connect),
        Exact("cgroup/connect6", ProgramType.CgroupSockAddr, AttachType.CgroupInet6Connect),
        Exact("cgroup/sendmsg4", ProgramType.CgroupSockAddr, AttachType.CgroupUdp4Sendmsg),
        Exact("cgroup/sendmsg6", ProgramType.CgroupSockAddr, AttachType.CgroupUdp6Sendmsg),
        Exact("cgroup/recvmsg4", ProgramType.CgroupSockAddr, AttachType.CgroupUdp4Recvmsg),
        Exact("cgroup/recvmsg6", ProgramType.CgroupSockAddr, AttachType.CgroupUdp6Recvmsg),
        Exact("cgroup/getpeername4", ProgramType.CgroupSockAddr, AttachType.CgroupInet4Getpeername),
        Exact("cgroup/getpeername6", ProgramType.CgroupSockAddr, AttachType.CgroupInet6Getpeername),
        Exact("cgroup/getsockname4", ProgramType.CgroupSockAddr, AttachType.CgroupInet4Getsockname),
        Exact("cgroup/getsockname6", ProgramType.CgroupSockAddr, AttachType.CgroupInet6Getsockname),
        Exact("cgroup/sysctl", ProgramType.CgroupSysctl, AttachType.CgroupSysctl),
        Exact("cgroup/getsockopt", ProgramType.CgroupSockopt, AttachType.CgroupGetsockopt),
        Exact("cgroup/setsockopt", ProgramType.CgroupSockopt, AttachType.CgroupSetsockopt),
        Exact("struct_ops", ProgramType.StructOps), Prefix("struct_ops/", ProgramType.StructOps),
        Exact("syscall", ProgramType.Syscall),
        Exact("netfilter", ProgramType.Netfilter, AttachType.Netfilter),
    ];

    /// <summary>
    /// Classifies a section name. Returns <see cref="ProgramType.Unspec"/> (and no attach type) when no
    /// rule matches: <c>sk_lookupx</c> or a bare <c>sk_lookup/</c> are not SK_LOOKUP.
    /// </summary>
    public static (ProgramType Type, AttachType? Attach) Classify(string sectionName)
    {
        foreach (var rule in s_rules)
        {
            if (!rule.Prefix && sectionName == rule.Pattern) return (rule.Type, rule.Attach);
        }
        foreach (var rule in s_rules)
        {
            if (rule.Prefix && sectionName.Length > rule.Pattern.Length && sectionName.StartsWith(rule.Pattern, StringComparison.Ordinal))
                return (rule.Type, rule.Attach);
        }
        return (ProgramType.Unspec, null);
    }
}
