using System.Runtime.CompilerServices;

namespace BpfJit.Runtime.Maps;

/// <summary>
/// struct bpf_spin_lock: a 4-byte word inside a map value, 0 when free and 1 when held. Programs take it
/// with bpf_spin_lock/bpf_spin_unlock; userspace takes it for BPF_F_LOCK lookups and updates.
/// </summary>
public static unsafe class BpfSpinLock
{
    /// <summary>Size of the lock word.</summary>
    public const int Size = 4;

    /// <summary>Takes the lock at <paramref name="address"/>, spinning (then yielding) while another holder has it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Lock(void* address)
    {
        ref int word = ref Unsafe.AsRef<int>(address);
        if (Interlocked.CompareExchange(ref word, 1, 0) != 0) Contended(ref word);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    static void Contended(ref int word)
    {
        var spin = new SpinWait();
        do spin.SpinOnce();
        while (Volatile.Read(ref word) != 0 || Interlocked.CompareExchange(ref word, 1, 0) != 0);
    }

    /// <summary>Releases the lock at <paramref name="address"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Unlock(void* address) => Volatile.Write(ref Unsafe.AsRef<int>(address), 0);

    /// <summary>
    /// Copies a map value like the kernel's copy_map_value(_locked): every byte except the special fields (the lock
    /// word, the bpf_timer at <paramref name="timerOffset"/> and the kptrs, when there are), under the destination's (or
    /// source's) lock when <paramref name="locked"/> is set.
    /// </summary>
    internal static void CopyValue(byte* from, byte* to, int size, int lockOffset, bool locked, bool lockDestination, int timerOffset = -1,
        IReadOnlyList<KptrField>? kptrs = null)
    {
        int kptrCount = kptrs?.Count ?? 0;
        if (lockOffset < 0 && timerOffset < 0 && kptrCount == 0)
        {
            Native.Copy(from, to, size);
            return;
        }
        byte* lockWord = lockOffset < 0 ? null : (lockDestination ? to : from) + lockOffset;
        if (locked && lockWord != null) Lock(lockWord);
        // The special fields in offset order, each skipped.
        Span<(int Off, int Len)> fields = stackalloc (int, int)[2 + kptrCount];
        int n = Fields(fields, lockOffset, timerOffset, kptrs);
        int pos = 0;
        for (int i = 0; i < n; i++)
        {
            Native.Copy(from + pos, to + pos, fields[i].Off - pos);
            pos = fields[i].Off + fields[i].Len;
        }
        Native.Copy(from + pos, to + pos, size - pos);
        if (locked && lockWord != null) Unlock(lockWord);
    }

    // The special fields present, sorted by offset (a handful: insertion sort); returns how many.
    static int Fields(Span<(int Off, int Len)> fields, int lockOffset, int timerOffset, IReadOnlyList<KptrField>? kptrs)
    {
        int n = 0;
        if (lockOffset >= 0) fields[n++] = (lockOffset, Size);
        if (timerOffset >= 0) fields[n++] = (timerOffset, BpfTimers.Size);
        if (kptrs != null)
            foreach (var k in kptrs) fields[n++] = (k.Offset, KptrField.Size);
        for (int i = 1; i < n; i++)
            for (int j = i; j > 0 && fields[j - 1].Off > fields[j].Off; j--) (fields[j - 1], fields[j]) = (fields[j], fields[j - 1]);
        return n;
    }

    /// <summary>Clears the special fields of a value copied out to userspace (the kernel's check_and_init_map_value).</summary>
    internal static void ClearSpecialFields(byte* value, int lockOffset, int timerOffset, IReadOnlyList<KptrField>? kptrs = null)
    {
        if (lockOffset >= 0) *(int*)(value + lockOffset) = 0;
        if (timerOffset >= 0) System.Runtime.InteropServices.NativeMemory.Clear(value + timerOffset, BpfTimers.Size);
        FreeKptrs(value, kptrs);
    }

    /// <summary>
    /// The kernel's bpf_obj_free_fields for kptrs: each field of an element being replaced, deleted or overwritten is
    /// emptied. A referenced kptr would have its object released; no SK_LOOKUP program can acquire one, so each holds NULL
    /// or a pointer the runtime owns nothing of.
    /// </summary>
    internal static void FreeKptrs(byte* value, IReadOnlyList<KptrField>? kptrs)
    {
        if (kptrs == null) return;
        foreach (var k in kptrs) Interlocked.Exchange(ref *(long*)(value + k.Offset), 0);
    }
}
