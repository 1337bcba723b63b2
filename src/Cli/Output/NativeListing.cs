using System.Reflection;
using System.Reflection.Emit;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Decoder = Iced.Intel.Decoder;
using FlowControl = Iced.Intel.FlowControl;
using BpfJit.IlEmitter;
using Iced.Intel;

namespace BpfJit.Cli.Output;

/// <summary>
/// <c>dump --native</c>: the machine code RyuJIT produced for a compiled program, as <c>bpftool prog dump jited</c>
/// shows the kernel JIT's. The code is read from the compiled DynamicMethod's entry point in this process and
/// disassembled with Iced (x86-64), or on arm64 with Capstone (<see cref="Arm64Listing"/>). The extent of the method is found by decoding from its entry and
/// following every forward branch inside it until a return or jump past the furthest target.
/// </summary>
public static unsafe class NativeListing
{
    /// <summary>Upper bound on the bytes read from one method (the JIT's code for the largest corpus program is far smaller).</summary>
    const int MaxBytes = 1 << 20;

    /// <summary>The architecture of this process's code, as the listing names it: <c>x86-64</c> or <c>arm64</c>.</summary>
    public static string Arch => RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "arm64" : "x86-64";

    /// <summary>The disassembly of code read in this process (<see cref="Read"/>): Iced's on x86-64, Capstone's on arm64 (<see cref="Arm64Listing"/>).</summary>
    public static string Listing(nint address, byte[] code) =>
        RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? Arm64Listing.Format(address, code) : Format(address, code);

    /// <summary>The compiled method's code: its address and bytes.</summary>
    public static (nint Address, byte[] Code) Read(CompiledProgram compiled)
    {
        ArgumentNullException.ThrowIfNull(compiled);
        if (RuntimeInformation.ProcessArchitecture is not (Architecture.X64 or Architecture.Arm64))
            throw new BpfJit.Frontend.BpfException($"--native disassembles x86-64 and arm64 code; this process runs on {RuntimeInformation.ProcessArchitecture}");
        compiled.JitCompleted.GetAwaiter().GetResult();
        var entry = compiled.Entry;
        // RyuJIT compiles the DynamicMethod when its delegate is made (DynamicMethodHost); PrepareMethod makes sure.
        var method = entry.Method as DynamicMethod
            ?? throw new BpfJit.Frontend.BpfException("the compiled program is not a DynamicMethod");
        var descriptor = (RuntimeMethodHandle)(typeof(DynamicMethod).GetMethod("GetMethodDescriptor", BindingFlags.NonPublic | BindingFlags.Instance)
            ?.Invoke(method, null) ?? throw new BpfJit.Frontend.BpfException("this runtime does not expose a DynamicMethod's handle"));
        try { RuntimeHelpers.PrepareMethod(descriptor); }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException) { } // already compiled when its delegate was made
        if (RuntimeInformation.ProcessArchitecture == Architecture.Arm64)
        {
            ulong code = Arm64Listing.FollowStubs(Copy, (ulong)descriptor.GetFunctionPointer());
            return ((nint)code, Arm64Listing.MethodBytes(Copy, code));
        }
        nint address = FollowStubs(descriptor.GetFunctionPointer());
        return (address, MethodBytes(address));
    }

    // The entry point may be a precode stub that jumps to the code: follow jmp rel32 and jmp [rip+disp32].
    static nint FollowStubs(nint address)
    {
        for (int hop = 0; hop < 4; hop++)
        {
            var decoder = Decoder.Create(64, new ByteArrayCodeReader(Copy(address, 16)), (ulong)address);
            var ins = decoder.Decode();
            if (ins.Mnemonic != Mnemonic.Jmp) return address;
            if (ins.Op0Kind == OpKind.NearBranch64) address = (nint)ins.NearBranch64;
            else if (ins.Op0Kind == OpKind.Memory && ins.IsIPRelativeMemoryOperand) address = *(nint*)ins.IPRelativeMemoryAddress;
            else return address;
        }
        return address;
    }

    static byte[] Copy(ulong address, int length) => Copy((nint)address, length);

    static byte[] Copy(nint address, int length)
    {
        var bytes = new byte[length];
        Marshal.Copy(address, bytes, 0, length);
        return bytes;
    }

    // Decodes from the entry, one instruction at a time (never reading more than the current instruction's 15
    // bytes ahead), until a ret or unconditional jmp with no branch target of the method after it.
    static byte[] MethodBytes(nint address)
    {
        ulong start = (ulong)address, furthest = start, ip = start;
        var bytes = new List<byte>();
        while (bytes.Count < MaxBytes)
        {
            var window = Copy((nint)ip, 15);
            var decoder = Decoder.Create(64, new ByteArrayCodeReader(window), ip);
            var ins = decoder.Decode();
            if (ins.IsInvalid) break;
            bytes.AddRange(window.AsSpan(0, ins.Length));
            ip += (ulong)ins.Length;
            if (ins.FlowControl is FlowControl.ConditionalBranch or FlowControl.UnconditionalBranch && ins.Op0Kind is OpKind.NearBranch64 or OpKind.NearBranch32)
            {
                ulong target = ins.NearBranchTarget;
                if (target > furthest && target - start < MaxBytes) furthest = target;
            }
            if (ins.FlowControl is FlowControl.Return or FlowControl.UnconditionalBranch or FlowControl.Interrupt && ip > furthest) break;
        }
        return [.. bytes];
    }

    /// <summary>The disassembly, one instruction a line: <c>00007f3a12345678 48 8b 07    mov rax,[rdi]</c>.</summary>
    public static string Format(nint address, byte[] code)
    {
        ArgumentNullException.ThrowIfNull(code);
        var sb = new StringBuilder();
        var decoder = Decoder.Create(64, new ByteArrayCodeReader(code), (ulong)address);
        var formatter = new IntelFormatter();
        formatter.Options.FirstOperandCharIndex = 8;
        var output = new StringOutput();
        ulong end = (ulong)address + (ulong)code.Length;
        while (decoder.IP < end)
        {
            var ins = decoder.Decode();
            formatter.Format(ins, output);
            int offset = (int)(ins.IP - (ulong)address);
            string hex = Convert.ToHexString(code, offset, ins.Length).ToLowerInvariant();
            sb.Append(offset.ToString("x4", System.Globalization.CultureInfo.InvariantCulture)).Append(": ")
              .Append(hex.PadRight(24)).Append(' ').AppendLine(output.ToStringAndReset());
        }
        return sb.ToString();
    }
}
