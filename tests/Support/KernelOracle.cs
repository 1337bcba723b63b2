using System.Runtime.InteropServices;

namespace BpfJit.Tests.Support;

/// <summary>
/// What a test does when the live kernel answers differently from the answer recorded beside a case.
/// Kernel builds differ between machines (two builds of 6.18 disagree on a pruning case and on
/// <c>bpf_sk_assign</c> with a socket-or-NULL), so a different live answer is a fact about the host,
/// not a failure of BpfJit: by default it is reported (the test ends with a warning naming both
/// kernels). It fails when the live kernel is the build the answer was recorded on, or when
/// <c>BPFJIT_KERNEL_STRICT=1</c> asks for the strict comparison on any kernel
/// (<c>BPFJIT_KERNEL_STRICT=1 dotnet test tests/BpfJit.Tests.csproj --filter TestCategory=KernelOracle</c>).
/// </summary>
public static class KernelOracle
{
    /// <summary>The NUnit category of every test that compares with the live kernel.</summary>
    public const string Category = "KernelOracle";

    /// <summary>
    /// The kernel build (<c>uname -r</c>) the tests' kernel expectations were last checked on, for tests that
    /// carry no release of their own (the corpus files name theirs in a <c>## checked-on:</c> line).
    /// </summary>
    public const string RecordedRelease = "6.18.44-fc-v1300";

    static readonly Lazy<string> s_live = new(ReadRelease);

    /// <summary>The live kernel's release (<c>uname -r</c>), or "unknown".</summary>
    public static string LiveRelease => s_live.Value;

    /// <summary>True when <c>BPFJIT_KERNEL_STRICT=1</c>: every difference from a recorded answer fails.</summary>
    public static bool StrictRequested => Environment.GetEnvironmentVariable("BPFJIT_KERNEL_STRICT") == "1";

    /// <summary>True when a difference from an answer recorded on <paramref name="recordedOn"/> fails the test here.</summary>
    public static bool IsStrict(string recordedOn) => StrictRequested || recordedOn == LiveRelease;

    /// <summary>
    /// Reports that the live kernel's answer differs from the one recorded on <paramref name="recordedOn"/>:
    /// fails when <see cref="IsStrict"/>, otherwise records a warning that says so (the caller returns).
    /// </summary>
    public static void Differs(string recordedOn, string what)
    {
        if (IsStrict(recordedOn))
            Assert.Fail($"the live kernel ({LiveRelease}) differs from the answer recorded on {recordedOn}: {what}");
        Assert.Warn($"not failed: the live kernel ({LiveRelease}) is not the build this answer was recorded on ({recordedOn}) " +
                    $"and answers differently (BPFJIT_KERNEL_STRICT=1 makes this a failure): {what}");
    }

    /// <summary>
    /// True when the live kernel answered as recorded (<paramref name="agrees"/>); otherwise reports the difference
    /// (<see cref="Differs"/>) and returns false, so the caller stops comparing.
    /// </summary>
    public static bool Agrees(bool agrees, Func<string> what, string recordedOn = RecordedRelease)
    {
        if (!agrees) Differs(recordedOn, what());
        return agrees;
    }

    static string ReadRelease()
    {
        try
        {
            const string path = "/proc/sys/kernel/osrelease";
            if (File.Exists(path)) return File.ReadAllText(path).Trim();
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return RuntimeInformation.OSDescription;
    }
}
