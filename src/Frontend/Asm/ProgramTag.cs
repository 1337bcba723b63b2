using System.Security.Cryptography;

namespace BpfJit.Frontend;

/// <summary>
/// The program tag the kernel computes at BPF_PROG_LOAD (bpf_prog_calc_tag) and <c>bpftool prog show</c> prints:
/// the first 8 bytes of a digest of the instructions as loaded, with the immediates of an ld_imm64 that names a
/// map (BPF_PSEUDO_MAP_FD, src 1) or a map value (BPF_PSEUDO_MAP_VALUE, src 2) zeroed in both slots, so the tag
/// does not depend on file descriptor numbers. An object's map references, which BpfJit's loader marks by index
/// (src 5 and 6), are digested as libbpf submits them: as src 1 and 2. Linux 6.18 digests with SHA-256 (the digest program signing
/// uses; <see cref="Sha256"/>); earlier kernels used SHA-1, which <see cref="ComputeSha1"/> gives for comparison with them.
/// </summary>
public static class ProgramTag
{
    /// <summary>The tag as Linux 6.18 computes it, as 16 lowercase hex digits.</summary>
    public static string Compute(ReadOnlySpan<Instruction> slots)
    {
        Span<byte> digest = stackalloc byte[Sha256.HashSize];
        Sha256.Hash(Canonical(slots), digest);
        return Hex(digest[..8]);
    }

    /// <summary>The tag as kernels before 6.18 computed it (SHA-1), as 16 lowercase hex digits.</summary>
    public static string ComputeSha1(ReadOnlySpan<Instruction> slots)
    {
#pragma warning disable CA5350 // the kernel's own (pre-6.18) choice, reproduced for comparison, not used for security
        return Hex(SHA1.HashData(Canonical(slots)).AsSpan(0, 8));
#pragma warning restore CA5350
    }

    // Lowercase hex by a loop: Convert.ToHexStringLower's vectorised path is compiled by RyuJIT at its first call
    // (about 5 ms at a process's first program, docs/perf.md "Cold start"), for 16 characters.
    static string Hex(ReadOnlySpan<byte> bytes)
    {
        Span<char> text = stackalloc char[bytes.Length * 2];
        for (int i = 0; i < bytes.Length; i++)
        {
            text[2 * i] = "0123456789abcdef"[bytes[i] >> 4];
            text[2 * i + 1] = "0123456789abcdef"[bytes[i] & 0xf];
        }
        return new string(text);
    }

    /// <summary>The bytes the kernel digests: the slots with map references' immediates zeroed.</summary>
    static byte[] Canonical(ReadOnlySpan<Instruction> slots)
    {
        var copy = slots.ToArray();
        bool wasLdMap = false;
        for (int i = 0; i < copy.Length; i++)
        {
            var ins = copy[i];
            if (!wasLdMap && ins.Opcode == Op.LdImm64 && ins.Src is 1 or 2 or 5 or 6)
            {
                // BpfJit's loader marks an object's map references by index (src 5/6, BPF_PSEUDO_MAP_IDX[_VALUE]);
                // libbpf submits them as fds (src 1/2), which is what the kernel digests.
                wasLdMap = true;
                copy[i] = ins with { Src = ins.Src switch { 5 => 1, 6 => 2, var s => s }, Imm = 0 };
            }
            else if (wasLdMap && ins.Opcode == 0 && ins.Dst == 0 && ins.Src == 0 && ins.Offset == 0)
            {
                wasLdMap = false;
                copy[i] = ins with { Imm = 0 };
            }
            else
            {
                wasLdMap = false;
            }
        }
        return Encoder.Encode(copy);
    }
}
