import Foundation

/// nnU-Net's channel file names: a case's channels are the files CASE_0000.ext, CASE_0001.ext, ...
/// (a four-digit channel number after the case identifier), in raw data sets, import folders
/// and prediction inputs alike.
public enum ChannelFileName {
    /// The case identifier and channel of a file stem ("liver_7_0001" gives ("liver_7", 1)); nil
    /// for a stem without the suffix.
    public static func parse(_ stem: String) -> (identifier: String, channel: Int)? {
        let digits = stem.suffix(4)
        guard stem.count > 5, stem.dropLast(4).hasSuffix("_"), digits.allSatisfy({ $0.isASCII && $0.isNumber }),
              let channel = Int(digits) else { return nil }
        return (String(stem.dropLast(5)), channel)
    }

    /// The file name of one channel of a case: "CASE_0001.nii.gz".
    public static func name(_ identifier: String, channel: Int, ending: String) -> String {
        String(format: "%@_%04d%@", identifier, channel, ending)
    }

    /// The files of a case's `channels` channels in `folder`.
    public static func files(_ identifier: String, channels: Int, ending: String, in folder: URL) -> [URL] {
        (0..<channels).map { folder.appendingPathComponent(name(identifier, channel: $0, ending: ending)) }
    }
}
