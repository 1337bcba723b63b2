namespace BpfJit.Frontend;

/// <summary>
/// The eBPF machine ABI in one place, with the kernel's names: the register file and the roles of its
/// registers, the stack and call-frame limits, the helper and bpf-to-bpf calling convention, and the size
/// limits a program is checked against. The verifier, the interpreter, the IL emitter and the dumps all read
/// these values, so the engines run exactly the machine the verifier reasons about.
/// </summary>
/// <remarks>
/// The calling convention (include/linux/filter.h, Documentation/bpf/standardization/abi.rst): a call to a
/// helper, a kfunc or a subprogram passes up to <see cref="MaxArgs"/> arguments in r1-r5 and returns in r0;
/// r0-r5 are clobbered by the call (caller-saved, the verifier marks them unreadable after it), r6-r9 are
/// preserved (callee-saved) and r10 is the read-only frame pointer. A subprogram gets a fresh frame of
/// <see cref="StackSize"/> bytes; the chain of frames active at once may use at most
/// <see cref="CombinedStackLimit"/> bytes in total and be at most <see cref="MaxCallFrames"/> deep.
/// </remarks>
public static class BpfAbi
{
    /// <summary>Registers r0-r10 (the kernel's <c>MAX_BPF_REG</c>, 11 without its hidden auxiliary register).</summary>
    public const int RegisterCount = 11;

    /// <summary>The highest register number an instruction may name (r10).</summary>
    public const int MaxRegister = RegisterCount - 1;

    /// <summary>r0 (<c>BPF_REG_0</c>): the return value of helpers, kfuncs, subprograms and the program.</summary>
    public const int ReturnRegister = 0;

    /// <summary>r1 (<c>BPF_REG_1</c>): the first argument; the program's context on entry.</summary>
    public const int FirstArgRegister = 1;

    /// <summary>Arguments passed in registers, r1-r5 (the kernel's <c>MAX_BPF_FUNC_REG_ARGS</c>).</summary>
    public const int MaxArgs = 5;

    /// <summary>r5 (<c>BPF_REG_5</c>): the last argument register.</summary>
    public const int LastArgRegister = FirstArgRegister + MaxArgs - 1;

    /// <summary>r6 (<c>BPF_REG_6</c>): the first callee-saved register; r6-r9 survive a call.</summary>
    public const int FirstCalleeSaved = 6;

    /// <summary>Callee-saved registers, r6-r9.</summary>
    public const int CalleeSavedCount = 4;

    /// <summary>r9 (<c>BPF_REG_9</c>): the last callee-saved register.</summary>
    public const int LastCalleeSaved = FirstCalleeSaved + CalleeSavedCount - 1;

    /// <summary>r10 (<c>BPF_REG_FP</c>): the read-only frame pointer, one past the top of the current frame.</summary>
    public const int FramePointer = 10;

    /// <summary>Caller-saved registers r0-r5 (the verifier's <c>CALLER_SAVED_REGS</c>), clobbered by every call.</summary>
    public const int CallerSavedCount = 6;

    /// <summary>Bit mask of the caller-saved registers r0-r5 (bit n: rn).</summary>
    public const ushort CallerSavedMask = (1 << CallerSavedCount) - 1;

    /// <summary>Stack bytes of one frame (the kernel's <c>MAX_BPF_STACK</c>).</summary>
    public const int StackSize = 512;

    /// <summary>
    /// Stack bytes the frames active at once may use together: the verifier's check_max_stack_depth rejects a
    /// call chain whose rounded depths add up to more (it compares against <c>MAX_BPF_STACK</c>).
    /// </summary>
    public const int CombinedStackLimit = StackSize;

    /// <summary>Deepest bpf-to-bpf call nesting, the main program counting as one frame (the kernel's <c>MAX_CALL_FRAMES</c>).</summary>
    public const int MaxCallFrames = 8;

    /// <summary>
    /// Most instructions a program may have and most the verifier may process (the kernel's
    /// <c>BPF_COMPLEXITY_LIMIT_INSNS</c>, the privileged loader's limit).
    /// </summary>
    public const int MaxInsns = 1_000_000;

    /// <summary>Most subprograms a program may have, the main program included (the kernel's <c>BPF_MAX_SUBPROGS</c>).</summary>
    public const int MaxSubprogs = 256;

    /// <summary>Bytes of a program or map name, its terminating NUL included (the kernel's <c>BPF_OBJ_NAME_LEN</c>).</summary>
    public const int ObjNameLength = 16;

    /// <summary>Bytes of a program tag (the kernel's <c>BPF_TAG_SIZE</c>).</summary>
    public const int TagSize = 8;
}
