namespace BpfJit.Runtime.Maps;

/// <summary>Linux errno values the runtime returns, negated, like the kernel (<c>-Errno.ENOENT</c>).</summary>
public static class Errno
{
    /// <summary>Operation not permitted.</summary>
    public const int EPERM = 1;
    /// <summary>No such entry.</summary>
    public const int ENOENT = 2;
    /// <summary>Argument list (or size) too big.</summary>
    public const int E2BIG = 7;
    /// <summary>Bad file descriptor.</summary>
    public const int EBADF = 9;
    /// <summary>Try again (ring buffer full).</summary>
    public const int EAGAIN = 11;
    /// <summary>Out of memory.</summary>
    public const int ENOMEM = 12;
    /// <summary>Bad address.</summary>
    public const int EFAULT = 14;
    /// <summary>Device or resource busy.</summary>
    public const int EBUSY = 16;
    /// <summary>Entry exists.</summary>
    public const int EEXIST = 17;
    /// <summary>Invalid argument.</summary>
    public const int EINVAL = 22;
    /// <summary>No space left.</summary>
    public const int ENOSPC = 28;
    /// <summary>Result out of range.</summary>
    public const int ERANGE = 34;
    /// <summary>Operation not supported on this object.</summary>
    public const int EOPNOTSUPP = 95;
    /// <summary>The kernel-internal ENOTSUPP that map operations return to userspace.</summary>
    public const int ENOTSUPP = 524;

    /// <summary>The symbolic name of an errno value (positive or negated), e.g. <c>ENOENT</c>.</summary>
    public static string Name(long code) => Math.Abs(code) switch
    {
        0 => "0",
        EPERM => "EPERM", ENOENT => "ENOENT", E2BIG => "E2BIG", EBADF => "EBADF", EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM", EFAULT => "EFAULT", EBUSY => "EBUSY", EEXIST => "EEXIST", EINVAL => "EINVAL",
        ENOSPC => "ENOSPC", ERANGE => "ERANGE", EOPNOTSUPP => "EOPNOTSUPP", ENOTSUPP => "ENOTSUPP",
        var n => $"errno {n}",
    };
}
