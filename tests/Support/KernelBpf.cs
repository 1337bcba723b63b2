using BpfJit.Frontend;
using Kernel = BpfJit.Baselines.KernelBpf;

namespace BpfJit.Tests.Support;

/// <summary>
/// The live Linux kernel as a test oracle. The bpf() P/Invoke lives in <see cref="Kernel"/>
/// (perf/Baselines, shared with the benchmark suite's kernel column); this adds
/// <see cref="RequireAvailable"/>, which marks a test ignored, with the errno, where the host does
/// not permit bpf().
/// </summary>
public static class KernelBpf
{
    /// <summary>True when programs can be loaded here.</summary>
    public static bool Available => Kernel.Available;

    /// <summary>Marks the calling test ignored, with the reason, when the kernel cannot be used.</summary>
    public static void RequireAvailable()
    {
        if (!Kernel.Available) Assert.Ignore("kernel oracle unavailable: " + Kernel.UnavailableReason);
    }

    /// <summary>
    /// Creates a map; returns the fd or a negative errno. <paramref name="innerMapFd"/>: a map-in-map's inner_map_fd;
    /// <paramref name="numaNode"/>: numa_node (read with BPF_F_NUMA_NODE). Sizes are the syscall's u32 bits.
    /// </summary>
    public static int CreateMap(uint type, int keySize, int valueSize, int maxEntries, uint flags, int innerMapFd = 0, uint numaNode = 0) =>
        Kernel.CreateMap(type, keySize, valueSize, maxEntries, flags, innerMapFd, numaNode);

    /// <summary>BPF_MAP_UPDATE_ELEM; 0 or a negative errno.</summary>
    public static int Update(int fd, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags = 0) => Kernel.UpdateElem(fd, key, value, flags);

    /// <summary>BPF_MAP_LOOKUP_ELEM; 0 or a negative errno.</summary>
    public static int Lookup(int fd, ReadOnlySpan<byte> key, Span<byte> value, ulong flags = 0) => Kernel.LookupElem(fd, key, value, flags);

    /// <summary>BPF_MAP_LOOKUP_AND_DELETE_ELEM; 0 or a negative errno.</summary>
    public static int LookupAndDelete(int fd, ReadOnlySpan<byte> key, Span<byte> value, ulong flags = 0) => Kernel.LookupAndDeleteElem(fd, key, value, flags);

    /// <summary>BPF_MAP_GET_NEXT_KEY (empty key: the first); 0 or a negative errno.</summary>
    public static int GetNextKey(int fd, ReadOnlySpan<byte> key, Span<byte> nextKey) => Kernel.GetNextKey(fd, key, nextKey);

    /// <summary>BPF_MAP_FREEZE; 0 or a negative errno.</summary>
    public static int Freeze(int fd) => Kernel.Freeze(fd);

    /// <summary>BPF_MAP_DELETE_ELEM; 0 or a negative errno.</summary>
    public static int Delete(int fd, ReadOnlySpan<byte> key) => Kernel.DeleteElem(fd, key);

    /// <summary>Closes a descriptor.</summary>
    public static void Close(int fd) => Kernel.Close(fd);

    /// <summary>
    /// Loads <paramref name="slots"/> as an SK_LOOKUP program (src 5/6 map references index <paramref name="mapFds"/>) under
    /// <paramref name="license"/> and returns the verdict.
    /// </summary>
    public static Kernel.LoadResult Load(IReadOnlyList<Instruction> slots, IReadOnlyList<int> mapFds, int logLevel = 1, string license = "GPL") =>
        Kernel.Load(slots, mapFds, logLevel, license);

    /// <summary>
    /// Loads <paramref name="slots"/> as a program of <paramref name="type"/> with expected attach type
    /// <paramref name="attach"/> (an SK_REUSEPORT program: BPF_SK_REUSEPORT_SELECT or _SELECT_OR_MIGRATE) and returns the verdict.
    /// </summary>
    public static Kernel.LoadResult Load(IReadOnlyList<Instruction> slots, IReadOnlyList<int> mapFds, BpfJit.Frontend.Elf.ProgramType type,
        BpfJit.Frontend.Elf.AttachType attach, int logLevel = 1, string license = "GPL") =>
        Kernel.Load(slots, mapFds, (uint)type, (uint)attach, logLevel, license);

    /// <summary>Loads the program with BTF func_info (<paramref name="btfFd"/> and a (first slot, FUNC type id) per subprogram) and returns the verdict.</summary>
    public static Kernel.LoadResult Load(IReadOnlyList<Instruction> slots, IReadOnlyList<int> mapFds, int btfFd, IReadOnlyList<(int InsnOff, uint TypeId)> funcInfo, int logLevel = 1) =>
        Kernel.Load(slots, mapFds, btfFd, funcInfo, logLevel);

    /// <summary>Loads the program and runs it once with BPF_PROG_TEST_RUN on a 72-byte context.</summary>
    public static Kernel.RunResult TestRun(IReadOnlyList<Instruction> slots, IReadOnlyList<int> mapFds, byte[] ctxIn) =>
        Kernel.TestRun(slots, mapFds, ctxIn);
}

/// <summary>BTF for the kernel oracle (<see cref="BpfJit.Baselines.KernelBtf"/>): maps whose values hold a bpf_spin_lock.</summary>
public static class KernelBtf
{
    /// <summary>Creates a map whose BTF value type has a <c>struct bpf_spin_lock</c> at <paramref name="lockOffset"/>; the fd or a negative errno.</summary>
    public static int CreateMapWithSpinLock(uint type, int keySize, int valueSize, int maxEntries, uint flags, int lockOffset) =>
        BpfJit.Baselines.KernelBtf.CreateMapWithSpinLock(type, keySize, valueSize, maxEntries, flags, lockOffset);

    /// <summary>Creates a map whose BTF value type has a <c>struct bpf_timer</c> at <paramref name="timerOffset"/> (and a lock at <paramref name="lockOffset"/> unless -1).</summary>
    public static int CreateMapWithTimer(uint type, int keySize, int valueSize, int maxEntries, uint flags, int timerOffset, int lockOffset = -1) =>
        BpfJit.Baselines.KernelBtf.CreateMapWithSpinLock(type, keySize, valueSize, maxEntries, flags, lockOffset, timerOffset);

    static readonly Lazy<BpfJit.Frontend.Btf.BtfSpec?> s_vmlinux = new(() =>
    {
        const string path = "/sys/kernel/btf/vmlinux";
        return File.Exists(path) ? BpfJit.Frontend.Btf.BtfSpec.Parse(File.ReadAllBytes(path), path) : null;
    });

    /// <summary>
    /// <paramref name="program"/> with each kfunc call's immediate, an index into <paramref name="names"/>, replaced by
    /// that function's BTF id in the live kernel's vmlinux BTF (what libbpf does); ignores the test without kernel BTF.
    /// </summary>
    public static Instruction[] ResolveKfuncs(Instruction[] program, IReadOnlyList<string> names)
    {
        if (names.Count == 0) return program;
        var btf = s_vmlinux.Value;
        if (btf == null) Assert.Ignore("no kernel BTF at /sys/kernel/btf/vmlinux");
        return program.Select(i => i.IsCall && i.Src == (byte)CallKind.Kfunc && i.Imm >= 0 && i.Imm < names.Count
            ? i with { Imm = (int)btf!.FindByName(names[i.Imm], BpfJit.Frontend.Btf.BtfKind.Func).Single().Id } : i).ToArray();
    }

    /// <summary>Creates a map typed by an object's loaded BTF (<see cref="LoadObjectBtf"/>): the fd or a negative errno.</summary>
    public static int CreateMapWithBtf(uint type, int keySize, int valueSize, int maxEntries, uint flags, int btfFd, uint keyTypeId, uint valueTypeId) =>
        BpfJit.Baselines.KernelBtf.CreateMapWithBtf(type, keySize, valueSize, maxEntries, flags, btfFd, keyTypeId, valueTypeId);

    /// <summary>Loads an object's own .BTF section (DATASECs laid out as a loader would); the fd, or throws with the kernel's log.</summary>
    public static int LoadObjectBtf(ReadOnlySpan<byte> btf) => BpfJit.Baselines.KernelBtf.LoadObjectBtf(btf);
}
