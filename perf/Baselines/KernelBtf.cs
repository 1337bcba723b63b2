using System.Runtime.InteropServices;
using System.Text;
using BpfJit.Frontend;

namespace BpfJit.Baselines;

/// <summary>
/// Minimal BTF for the kernel oracle (BPF_BTF_LOAD): the kernel wants BTF func_info for a program
/// whose ld_imm64 takes a callback's address (BPF_PSEUDO_FUNC), and a BTF value type naming a
/// <c>struct bpf_spin_lock</c> for a map whose values carry a lock. Types are built here from scratch:
/// <c>int</c>, <c>char[N]</c>, one struct and one <c>int f(void)</c> per subprogram.
/// </summary>
public static unsafe class KernelBtf
{
    const long SysBpf = 321;
    const int BtfLoad = 18, MapCreate = 0;
    const int KindInt = 1, KindArray = 3, KindStruct = 4, KindFunc = 12, KindFuncProto = 13;

    [DllImport("libc", SetLastError = true)]
    static extern long syscall(long number, long cmd, void* attr, long size);

    /// <summary>Builds types and strings and encodes them as a BTF blob.</summary>
    sealed class Builder
    {
        readonly MemoryStream _types = new();
        readonly MemoryStream _strings = new();
        int _count;

        public Builder() => _strings.WriteByte(0);

        public uint Str(string s)
        {
            uint off = (uint)_strings.Length;
            var b = Encoding.ASCII.GetBytes(s);
            _strings.Write(b);
            _strings.WriteByte(0);
            return off;
        }

        void U32(uint v) => _types.Write(BitConverter.GetBytes(v));

        int Type(uint name, int kind, int vlen, uint sizeOrType, int linkageOrVlen = -1)
        {
            U32(name);
            U32((uint)(kind << 24) | (uint)(linkageOrVlen >= 0 ? linkageOrVlen : vlen));
            U32(sizeOrType);
            return ++_count;
        }

        public int Int(string name, int bytes)
        {
            int id = Type(Str(name), KindInt, 0, (uint)bytes);
            U32((1u << 24) | (uint)(bytes * 8)); // signed, offset 0, bits
            return id;
        }

        public int Array(int elem, int index, int count)
        {
            int id = Type(0, KindArray, 0, 0);
            U32((uint)elem);
            U32((uint)index);
            U32((uint)count);
            return id;
        }

        public int Struct(string name, int size, params (string Name, int Type, int ByteOffset)[] members)
        {
            int id = Type(Str(name), KindStruct, members.Length, (uint)size);
            foreach (var m in members)
            {
                U32(Str(m.Name));
                U32((uint)m.Type);
                U32((uint)(m.ByteOffset * 8));
            }
            return id;
        }

        public int FuncProto(int ret) => Type(0, KindFuncProto, 0, (uint)ret);

        public int Func(string name, int proto) => Type(Str(name), KindFunc, 0, (uint)proto, linkageOrVlen: 0);

        public byte[] Encode()
        {
            var types = _types.ToArray();
            var strings = _strings.ToArray();
            var blob = new byte[24 + types.Length + strings.Length];
            fixed (byte* p = blob)
            {
                *(ushort*)p = 0xeB9F;
                p[2] = 1;
                *(uint*)(p + 4) = 24;
                *(uint*)(p + 8) = 0;
                *(uint*)(p + 12) = (uint)types.Length;
                *(uint*)(p + 16) = (uint)types.Length;
                *(uint*)(p + 20) = (uint)strings.Length;
            }
            types.CopyTo(blob, 24);
            strings.CopyTo(blob, 24 + types.Length);
            return blob;
        }
    }

    /// <summary>Loads a BTF blob; returns the fd or throws with the kernel's BTF log.</summary>
    static int Load(byte[] blob)
    {
        var log = new byte[1 << 16];
        var attr = new byte[48];
        fixed (byte* b = blob, l = log, p = attr)
        {
            *(ulong*)(p + 0) = (ulong)b;
            *(ulong*)(p + 8) = (ulong)l;
            *(uint*)(p + 16) = (uint)blob.Length;
            *(uint*)(p + 20) = (uint)log.Length;
            *(uint*)(p + 24) = 1;
            long fd = syscall(SysBpf, BtfLoad, p, attr.Length);
            if (fd >= 0) return (int)fd;
            int errno = Marshal.GetLastPInvokeError();
            int len = System.Array.IndexOf(log, (byte)0);
            throw new InvalidOperationException($"BPF_BTF_LOAD failed: errno {errno}: {Encoding.ASCII.GetString(log, 0, len < 0 ? log.Length : len)}");
        }
    }

    /// <summary>
    /// Loads an object's own <c>.BTF</c> section (as clang wrote it) and returns the fd, or throws with the
    /// kernel's BTF log. Clang leaves each DATASEC's size and its variables' offsets for the loader to fill
    /// in from the ELF symbols (libbpf does); the kernel wants them, and nothing here reads them, so each
    /// DATASEC gets its variables laid out one after another, 8-byte aligned, and its size their sum.
    /// </summary>
    public static int LoadObjectBtf(ReadOnlySpan<byte> btf)
    {
        var blob = btf.ToArray();
        uint hdrLen = BitConverter.ToUInt32(blob, 4), typeOff = BitConverter.ToUInt32(blob, 8), typeLen = BitConverter.ToUInt32(blob, 12);
        int pos = (int)(hdrLen + typeOff), end = pos + (int)typeLen;
        while (pos < end)
        {
            uint info = BitConverter.ToUInt32(blob, pos + 4);
            int kind = (int)((info >> 24) & 0x1f), vlen = (int)(info & 0xffff);
            int extra = kind switch
            {
                KindInt or 14 or 17 => 4,                  // INT, VAR, DECL_TAG
                KindArray => 12,
                KindStruct or 5 or 15 or 19 => 12 * vlen,  // STRUCT, UNION, DATASEC, ENUM64
                6 or KindFuncProto => 8 * vlen,            // ENUM, FUNC_PROTO
                _ => 0,
            };
            if (kind == 15)
            {
                uint size = 0;
                for (int v = 0; v < vlen; v++)
                {
                    int rec = pos + 12 + v * 12;
                    size = (size + 7) & ~7u;
                    BitConverter.GetBytes(size).CopyTo(blob, rec + 4);
                    size += BitConverter.ToUInt32(blob, rec + 8);
                }
                BitConverter.GetBytes(Math.Max(size, 1)).CopyTo(blob, pos + 8);
            }
            pos += 12 + extra;
        }
        return Load(blob);
    }

    /// <summary>True when the program takes a callback's address (ld_imm64 src 4) and so needs func_info.</summary>
    public static bool NeedsFuncInfo(IReadOnlyList<Instruction> insns) =>
        insns.Where((ins, i) => ins.IsLdImm64 && ins.Src == 4 && (i == 0 || !insns[i - 1].IsLdImm64)).Any();

    /// <summary>BTF with one static <c>int fN(void)</c> per subprogram and the func_info records (insn_off, type_id) for them.</summary>
    public static (int BtfFd, byte[] Records, int Count) FuncInfo(IReadOnlyList<Instruction> insns)
    {
        var starts = new SortedSet<int> { 0 };
        for (int i = 0; i < insns.Count; i++)
        {
            var ins = insns[i];
            if ((ins.IsLdImm64 && ins.Src == 4) || (ins.IsCall && ins.Src == 1)) starts.Add(i + ins.Imm + 1);
            if (ins.IsLdImm64) i++;
        }
        var b = new Builder();
        int proto = b.FuncProto(b.Int("int", 4));
        var records = new byte[starts.Count * 8];
        int k = 0;
        foreach (int start in starts)
        {
            int func = b.Func(start == 0 ? "main" : $"f{start}", proto);
            BitConverter.GetBytes((uint)start).CopyTo(records, k * 8);
            BitConverter.GetBytes((uint)func).CopyTo(records, k * 8 + 4);
            k++;
        }
        return (Load(b.Encode()), records, starts.Count);
    }

    /// <summary>
    /// Creates a map whose BTF value type is a struct of <paramref name="valueSize"/> bytes with a
    /// <c>struct bpf_spin_lock</c> at <paramref name="lockOffset"/> and a <c>struct bpf_timer</c> at
    /// <paramref name="timerOffset"/> (each left out when -1); returns the map fd or a negative errno.
    /// </summary>
    public static int CreateMapWithSpinLock(uint type, int keySize, int valueSize, int maxEntries, uint flags, int lockOffset, int timerOffset = -1)
    {
        var b = new Builder();
        int u32 = b.Int("int", 4);
        int key = keySize == 4 ? u32 : b.Array(b.Int("char", 1), u32, keySize);
        var members = new List<(string, int, int)>();
        if (lockOffset >= 0) members.Add(("lock", b.Struct("bpf_spin_lock", 4, ("val", u32, 0)), lockOffset));
        if (timerOffset >= 0)
            members.Add(("timer", b.Struct("bpf_timer", 16, ("__opaque", b.Array(b.Int("long long", 8), u32, 2), 0)), timerOffset));
        int value = b.Struct("value", valueSize, [.. members.OrderBy(m => m.Item3)]);
        int btf = Load(b.Encode());
        try
        {
            return CreateMapWithBtf(type, keySize, valueSize, maxEntries, flags, btf, (uint)key, (uint)value);
        }
        finally
        {
            KernelBpf.Close(btf);
        }
    }

    /// <summary>
    /// BPF_MAP_CREATE with btf_fd <paramref name="btfFd"/> (<see cref="LoadObjectBtf"/>) and its key and value type ids, as libbpf
    /// creates an object's BTF-defined map (without its retry without BTF); returns the map fd or a negative errno.
    /// </summary>
    public static int CreateMapWithBtf(uint type, int keySize, int valueSize, int maxEntries, uint flags, int btfFd, uint keyTypeId, uint valueTypeId)
    {
        var attr = new byte[128];
        fixed (byte* p = attr)
        {
            *(uint*)(p + 0) = type;
            *(uint*)(p + 4) = (uint)keySize;
            *(uint*)(p + 8) = (uint)valueSize;
            *(uint*)(p + 12) = (uint)maxEntries;
            *(uint*)(p + 16) = flags;
            *(uint*)(p + 48) = (uint)btfFd;
            *(uint*)(p + 52) = keyTypeId;
            *(uint*)(p + 56) = valueTypeId;
            long fd = syscall(SysBpf, MapCreate, p, attr.Length);
            return fd < 0 ? -Marshal.GetLastPInvokeError() : (int)fd;
        }
    }
}
