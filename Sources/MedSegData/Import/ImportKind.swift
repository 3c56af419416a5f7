import Foundation
import Torch

/// The public data sets `medseg data import` knows, plus `folder` for any images/masks pair of folders.
public enum ImportKind: String, CaseIterable, Sendable {
    case isic2017, isic2018, ph2, isbi2012, drive, msd, folder

    /// What SRC must look like, for help texts and errors.
    public var expectedLayout: String {
        switch self {
        case .isic2017:
            return "ISIC-2017_Training_Data/ISIC_0000000.jpg + ISIC-2017_Training_Part1_GroundTruth/ISIC_0000000_segmentation.png "
                + "(optional ISIC-2017_Validation_* and ISIC-2017_Test_v2_* pairs)"
        case .isic2018:
            return "ISIC2018_Task1-2_Training_Input/ISIC_0000000.jpg + ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png "
                + "(optional ISIC2018_Task1-2_Validation_Input, ISIC2018_Task1-2_Test_Input and their ISIC2018_Task1_*_GroundTruth)"
        case .ph2:
            return "PH2 Dataset images/IMD002/IMD002_Dermoscopic_Image/IMD002.bmp + IMD002/IMD002_lesion/IMD002_lesion.bmp"
        case .isbi2012:
            return "train-volume.tif + train-labels.tif (multi-page stacks, cells 255, membranes 0), optional test-volume.tif; "
                + "or train/image/N.png + train/label/N.png (+ test/N.png)"
        case .drive:
            return "training/images/21_training.tif + training/1st_manual/21_manual1.gif (+ training/mask/21_training_mask.gif), "
                + "test/images/01_test.tif (+ test/1st_manual/01_manual1.gif, test/mask/01_test_mask.gif)"
        case .msd:
            return "a Decathlon task folder (Task03_Liver): dataset.json with modality, labels, training [{image, label}], test; "
                + "imagesTr/liver_0.nii.gz, labelsTr/liver_0.nii.gz, imagesTs/"
        case .folder:
            return "\(Setting.named("images", value: "DIR")) and \(Setting.named("masks", value: "DIR")) (default SRC/images and SRC/masks); masks named like their image, "
                + "optionally with a suffix such as _mask, _segmentation or _label"
        }
    }
}
